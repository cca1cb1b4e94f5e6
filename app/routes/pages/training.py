"""Pages: preprocessing a dataset (and listening to the result) and the new-run form with its
live linter, presets, YAML editor and official-YAML import/export."""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.routes.deps import SessionDep
from app.routes.pages.datasets import render_dataset_page
from app.templating import templates
from app.views import training_pages as pages
from core.errors import ApiError
from core.names import MODEL_PRESETS
from core.recipe.config_yaml import ConfigFileError
from core.recipe.official_yaml import OfficialConfigError, import_official_yaml, to_official_yaml
from core.recipe.run_config import PRESET_DESCRIPTIONS, PRESET_NAMES, parse_run_config
from core.services import preprocess_runs as preprocess_service
from core.services import runs as run_service
from core.services.datasets import get_dataset
from core.services.job_actions import resume_job
from core.services.job_queue import job_log
from core.services.jobs import request_cancel

router = APIRouter(include_in_schema=False)
FIELD_NAMES = (*pages.FORM_FIELDS, "sample_size", "prompts")


# --- the dataset's training panel and preprocessing --------------------------------------------


@router.get("/datasets/{dataset_id}/training", response_class=HTMLResponse)
def dataset_training_panel(dataset_id: int, request: Request, session: SessionDep):
    """The dataset page's training panel: the Preprocess form, its preprocess runs and training runs."""
    dataset = get_dataset(session, dataset_id)
    context = {
        "dataset": dataset,
        "models": MODEL_PRESETS,
        "default_model": preprocess_service.clean_model(None),
        "preprocess_runs": preprocess_service.list_preprocess_runs(session, dataset_id)[:10],
        "training_runs": run_service.list_runs(session, dataset_id, limit=10),
        "ready_run": pages.newest_ready_preprocess_run(session, dataset),
        "is_current": preprocess_service.is_current,
    }
    return templates.TemplateResponse(request, "partials/dataset_training.html", context)


@router.post("/datasets/{dataset_id}/preprocess")
def start_preprocess_form(dataset_id: int, request: Request, session: SessionDep, model: str = Form(""),
                          buckets: str = Form("")):
    """Queue preprocessing from the dataset page, then open the preprocess page (or say, as an error, what to fix)."""
    try:
        run = preprocess_service.start_preprocess(session, dataset_id, model=model or None, buckets=buckets or None)
    except ApiError as exc:
        session.rollback()
        refused = ApiError(exc.status, exc.code, "Preprocessing refused: " + exc.message)
        return render_dataset_page(request, get_dataset(session, dataset_id), error=refused, status_code=exc.status)
    return RedirectResponse(f"/preprocess/{run.id}", status_code=303)


def _preprocess_context(session, run_id: int) -> dict:
    run = preprocess_service.get_preprocess_run(session, run_id)
    view = preprocess_service.preprocess_run_to_dict(run)
    return {"run": view, "clips": pages.preprocess_clip_rows(run, view), "job": view["job"],
            "live": pages.live(view["status"]), "dataset": run.dataset,
            "log": _recent_log(session, run.job_id)}


def _recent_log(session, job_id: int | None, count: int = 12) -> list[dict]:
    if job_id is None:
        return []
    return job_log(session, job_id)[-count:]


@router.get("/preprocess/{run_id}", response_class=HTMLResponse)
def preprocess_page(run_id: int, request: Request, session: SessionDep):
    """A preprocess run: progress per clip while it runs, then original vs decoded media per clip."""
    return templates.TemplateResponse(request, "preprocess.html", _preprocess_context(session, run_id))


@router.get("/preprocess/{run_id}/body", response_class=HTMLResponse)
def preprocess_body(run_id: int, request: Request, session: SessionDep):
    """The preprocess page's body; it polls itself while the job is live and stops once it is over."""
    return templates.TemplateResponse(request, "partials/preprocess_body.html", _preprocess_context(session, run_id))


@router.post("/preprocess/{run_id}/cancel")
def cancel_preprocess_form(run_id: int, session: SessionDep) -> RedirectResponse:
    """Ask a live preprocess job to stop between clips."""
    run = preprocess_service.get_preprocess_run(session, run_id)
    if run.job is not None and pages.live(run.job.status):
        request_cancel(session, run.job)
    return RedirectResponse(f"/preprocess/{run_id}", status_code=303)


@router.post("/preprocess/{run_id}/resume", response_class=HTMLResponse)
def resume_preprocess_form(run_id: int, request: Request, session: SessionDep):
    """A failed, cancelled or interrupted preprocessing continues (cached clips are reused)."""
    run = preprocess_service.get_preprocess_run(session, run_id)
    try:
        if run.job is None:
            raise ApiError(409, "not_resumable", f"Preprocess run #{run_id} has no job to resume.")
        resume_job(session, run.job)
    except ApiError as exc:
        session.rollback()
        context = _preprocess_context(session, run_id)
        return templates.TemplateResponse(request, "preprocess.html", {**context, "error": exc},
                                          status_code=exc.status)
    return RedirectResponse(f"/preprocess/{run_id}", status_code=303)


# --- the new-run form --------------------------------------------------------------------------


def _form_values(form) -> dict[str, str]:
    return {name: str(form.get(name, "")) for name in FIELD_NAMES if name in form}


def _render_form(request: Request, dataset, state: pages.RunForm, *, preset: str | None = None, error=None,
                 notice: str = "", status_code: int = 200, parent_run_id: int | None = None):
    context = {"dataset": dataset, "form": state, "presets": PRESET_NAMES, "preset_descriptions": PRESET_DESCRIPTIONS,
               "preset": preset, "models": MODEL_PRESETS, "error": error, "notice": notice,
               "parent_run_id": parent_run_id}
    return templates.TemplateResponse(request, "run_new.html", context, status_code=status_code)


@router.get("/datasets/{dataset_id}/runs/new", response_class=HTMLResponse)
def new_run_page(dataset_id: int, request: Request, session: SessionDep, preset: str = "sanity",
                 preprocess_run: int | None = None, clone: int | None = None):
    """The run form, started from a preset (or a cloned run's config), with the linter's verdict."""
    dataset = get_dataset(session, dataset_id)
    given = preprocess_service.get_preprocess_run(session, preprocess_run) if preprocess_run else None
    if given is not None and given.dataset_id != dataset.id:
        given = None  # another dataset's preprocessing: start from this dataset's own
    base = run_service.get_run(session, clone).config if clone else None
    data = pages.starting_config(session, dataset, preset, given, base)
    state = pages.lint_form(session, dataset, pages.config_yaml(data), {}, "yaml")
    return _render_form(request, dataset, state, preset=None if clone else preset, parent_run_id=clone)


@router.post("/datasets/{dataset_id}/runs/lint", response_class=HTMLResponse)
async def lint_run_form(dataset_id: int, request: Request, session: SessionDep):
    """The linter's verdict on the form (htmx, as the person types), with the other editor redrawn."""
    form = await request.form()
    dataset = get_dataset(session, dataset_id)
    source = str(form.get("source", "yaml"))
    state = pages.lint_form(session, dataset, str(form.get("config_yaml", "")), _form_values(form), source)
    context = {"dataset": dataset, "form": state, "sync": source, "models": MODEL_PRESETS}
    return templates.TemplateResponse(request, "partials/lint.html", context)


@router.post("/datasets/{dataset_id}/runs", response_class=HTMLResponse)
async def queue_run_form(dataset_id: int, request: Request, session: SessionDep):
    """Queue the run the form describes and open its page; on a problem show the form again."""
    form = await request.form()
    dataset = get_dataset(session, dataset_id)
    source = str(form.get("source", "yaml"))
    parent = str(form.get("parent_run_id", ""))
    parent_run_id = int(parent) if parent.isdigit() else None
    state = pages.lint_form(session, dataset, str(form.get("config_yaml", "")), _form_values(form), source)
    if not state.can_queue:
        return _render_form(request, dataset, state, status_code=422, parent_run_id=parent_run_id)
    try:
        run, _warnings = run_service.create_run(session, dataset.id, state.data,
                                                preprocess_run_id=state.preprocess_run.id,
                                                parent_run_id=parent_run_id)
    except ApiError as exc:
        session.rollback()
        return _render_form(request, dataset, state, error=exc, status_code=exc.status, parent_run_id=parent_run_id)
    return RedirectResponse(f"/runs/{run.id}", status_code=303)


@router.post("/datasets/{dataset_id}/runs/import-official", response_class=HTMLResponse)
async def import_official_form(dataset_id: int, request: Request, session: SessionDep):
    """Read an official ltx-trainer YAML into the form (settings it lacks come from the form's config)."""
    form = await request.form()
    dataset = get_dataset(session, dataset_id)
    current, _ = pages.read_form(str(form.get("config_yaml", "")), _form_values(form), str(form.get("source", "yaml")))
    try:
        base = parse_run_config(current) if current is not None else None
    except ConfigFileError:
        base = None
    try:
        imported = import_official_yaml(str(form.get("official_yaml", "")), base=base)
    except OfficialConfigError as exc:
        state = pages.lint_form(session, dataset, str(form.get("config_yaml", "")), _form_values(form),
                                str(form.get("source", "yaml")))
        error = ApiError(422, "invalid_official_config", f"Could not import the official config: {exc}")
        return _render_form(request, dataset, state, error=error, status_code=422)
    data = imported.config.model_dump(mode="json")
    data.pop("output_dir", None)
    data.get("data", {}).pop("preprocessed_dir", None)
    state = pages.lint_form(session, dataset, pages.config_yaml(data), {}, "yaml")
    notes = "".join(f" Note: {note}." for note in imported.notes)
    return _render_form(request, dataset, state,
                        notice=f"Imported the official config: check the settings below.{notes}")


@router.post("/datasets/{dataset_id}/runs/export-official")
async def export_official_form(dataset_id: int, request: Request, session: SessionDep) -> Response:
    """The form's config as the official ltx-trainer YAML (a download), or the form with the problem."""
    form = await request.form()
    dataset = get_dataset(session, dataset_id)
    source = str(form.get("source", "yaml"))
    state = pages.lint_form(session, dataset, str(form.get("config_yaml", "")), _form_values(form), source)
    try:
        text = to_official_yaml(parse_run_config(state.data or {}))
    except (ConfigFileError, OfficialConfigError) as exc:
        error = ApiError(422, "cannot_export", f"Fix the config before exporting it: {exc}")
        return _render_form(request, dataset, state, error=error, status_code=422)
    filename = f"{dataset.trigger or 'run'}_ltx_trainer.yaml"
    return Response(text, media_type="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
