"""Pages: the datasets list, a dataset's grid of clips, its settings and bulk caption edits."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.routes.deps import SessionDep
from app.templating import templates
from core.errors import ApiError
from core.services import captions as caption_service
from core.services import datasets as dataset_service
from core.services.clip_findings import finding_label

router = APIRouter(include_in_schema=False)


def _dataset_context(dataset, **extra) -> dict:
    data = dataset_service.dataset_to_dict(dataset)
    return {"dataset": data, "clips": data["clips"], "summary": data["summary"], "finding_label": finding_label,
            **extra}


@router.get("/")
def home() -> RedirectResponse:
    """The studio opens on the datasets list."""
    return RedirectResponse("/datasets", status_code=303)


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, session: SessionDep):
    """Every dataset with its summary, and the form that creates one."""
    datasets = [dataset_service.dataset_to_dict(d, with_clips=False) for d in dataset_service.list_datasets(session)]
    return templates.TemplateResponse(request, "datasets.html", {"datasets": datasets, "form": {}, "error": None})


@router.post("/datasets", response_class=HTMLResponse)
def create_dataset_form(request: Request, session: SessionDep, name: str = Form(""), trigger: str = Form(""),
                        buckets: str = Form("")):
    """Create a dataset from the form, or show the form again with what to fix."""
    try:
        dataset = dataset_service.create_dataset(session, name, trigger, buckets or None)
    except ApiError as exc:
        datasets = [dataset_service.dataset_to_dict(d, with_clips=False)
                    for d in dataset_service.list_datasets(session)]
        form = {"name": name, "trigger": trigger, "buckets": buckets}
        return templates.TemplateResponse(request, "datasets.html",
                                          {"datasets": datasets, "form": form, "error": exc}, status_code=422)
    return RedirectResponse(f"/datasets/{dataset.id}", status_code=303)


def render_dataset_page(request: Request, dataset, *, notice: str = "", error: ApiError | None = None,
                        status_code: int = 200):
    """The dataset page, with a notice (green) or an error (red) above it."""
    return templates.TemplateResponse(request, "dataset.html", _dataset_context(dataset, notice=notice, error=error),
                                      status_code=status_code)


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(dataset_id: int, request: Request, session: SessionDep, notice: str = ""):
    """The dataset: summary, what the trainer would drop, upload zone, clip grid, settings, bulk edits."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    return templates.TemplateResponse(request, "dataset.html", _dataset_context(dataset, notice=notice, error=None))


@router.get("/datasets/{dataset_id}/grid", response_class=HTMLResponse)
def dataset_grid(dataset_id: int, request: Request, session: SessionDep):
    """The summary and clip grid (htmx swaps it; it polls itself while clips are being checked)."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    return templates.TemplateResponse(request, "partials/grid.html", _dataset_context(dataset))


@router.post("/datasets/{dataset_id}/settings", response_class=HTMLResponse)
def dataset_settings_form(dataset_id: int, request: Request, session: SessionDep, buckets: str = Form(""),
                          default_voice: str = Form(""), default_sounds: str = Form(""), trigger: str = Form(""),
                          language: str = Form(""), auto_transcribe: str = Form("")):
    """Save buckets (findings are recomputed), the caption defaults, the language the recogniser
    listens for (an empty field keeps it) and whether new clips are transcribed by themselves."""
    dataset = dataset_service.get_dataset(session, dataset_id)
    try:
        dataset_service.update_dataset(session, dataset, buckets=buckets, default_voice=default_voice,
                                       default_sounds=default_sounds, trigger=trigger or None,
                                       language=language.strip() or None, auto_transcribe=bool(auto_transcribe))
    except ApiError as exc:
        session.rollback()
        return templates.TemplateResponse(request, "dataset.html", _dataset_context(dataset, notice="", error=exc),
                                          status_code=422)
    return RedirectResponse(f"/datasets/{dataset_id}?notice=Settings+saved", status_code=303)


@router.post("/datasets/{dataset_id}/bulk", response_class=HTMLResponse)
async def dataset_bulk_form(dataset_id: int, request: Request, session: SessionDep):
    """Bulk edits on the selected clips: set voice / sounds, or find and replace in captions."""
    form = await request.form()
    clip_ids = [int(v) for v in form.getlist("clip_ids") if str(v).isdigit()]
    action = str(form.get("action", ""))
    skip_rejected = not form.get("include_rejected")  # rejected clips only when asked
    dataset = dataset_service.get_dataset(session, dataset_id)
    left_out = len(caption_service.rejected_among(dataset, clip_ids)) if skip_rejected else 0
    try:
        if action == "replace":
            changed = caption_service.find_replace(session, dataset, clip_ids, str(form.get("find", "")),
                                                   str(form.get("replace", "")), skip_rejected=skip_rejected)
            notice = f"Replaced in {changed} caption(s)"
        else:
            values = {k: str(form.get(k, "")) for k in ("voice", "sounds") if str(form.get(k, "")).strip()}
            changed = caption_service.bulk_set_fields(session, dataset, clip_ids, values, skip_rejected=skip_rejected)
            notice = f"Updated {changed} caption(s)"
        if left_out:
            notice += f"; left out {left_out} rejected clip(s) (tick 'Include rejected clips' to edit them too)"
    except ApiError as exc:
        session.rollback()
        return templates.TemplateResponse(request, "dataset.html", _dataset_context(dataset, notice="", error=exc),
                                          status_code=422)
    return RedirectResponse(f"/datasets/{dataset_id}?{urlencode({'notice': notice})}", status_code=303)


