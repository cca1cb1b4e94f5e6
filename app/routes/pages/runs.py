"""Pages: a training run (progress header, live log and loss chart over server-sent events,
checkpoints, samples) and its actions: cancel, resume, clone, export as official YAML."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.routes.deps import SessionDep
from app.templating import templates
from app.views import training_pages as pages
from core.errors import ApiError
from core.recipe.config_yaml import ConfigFileError
from core.recipe.official_yaml import OfficialConfigError, to_official_yaml
from core.recipe.run_config import parse_run_config, run_config_to_yaml
from core.services import runs as run_service
from core.services.job_actions import resume_job
from core.services.job_queue import job_log
from core.services.jobs import request_cancel

router = APIRouter(include_in_schema=False)
LOG_LINES_SHOWN = 200


def _run_context(session, run_id: int, **extra) -> dict:
    run = run_service.get_run(session, run_id)
    view = run_service.run_to_dict(run)
    log = job_log(session, run.job_id)[-LOG_LINES_SHOWN:] if run.job_id else []
    try:
        config_text = run_config_to_yaml(parse_run_config(run.config))
    except ConfigFileError:
        config_text = ""
    return {"run": view, "header": pages.run_header(run), "dataset": run.dataset, "log": log,
            "config_text": config_text, "error": None, "notice": "", **extra}


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(run_id: int, request: Request, session: SessionDep, notice: str = ""):
    """A training run: progress header, live log, loss chart, checkpoints, samples and actions."""
    return templates.TemplateResponse(request, "run.html", _run_context(session, run_id, notice=notice))


def _action_failed(request: Request, session, run_id: int, exc: ApiError):
    session.rollback()
    return templates.TemplateResponse(request, "run.html", _run_context(session, run_id, error=exc),
                                      status_code=exc.status)


@router.post("/runs/{run_id}/cancel", response_class=HTMLResponse)
def cancel_run(run_id: int, request: Request, session: SessionDep):
    """Ask the run's job to stop (between steps); a queued job is cancelled at once."""
    run = run_service.get_run(session, run_id)
    if run.job is None or not pages.live(run.job.status):
        return _action_failed(request, session, run_id,
                              ApiError(409, "not_running", f"Run #{run_id} is {run.status}: nothing to cancel."))
    request_cancel(session, run.job)
    return RedirectResponse(f"/runs/{run_id}?notice=Cancel+requested", status_code=303)


@router.post("/runs/{run_id}/resume", response_class=HTMLResponse)
def resume_run(run_id: int, request: Request, session: SessionDep):
    """Queue a new attempt of a failed, cancelled or interrupted run from its last checkpoint."""
    run = run_service.get_run(session, run_id)
    if run.job is None:
        return _action_failed(request, session, run_id,
                              ApiError(409, "not_resumable", f"Run #{run_id} has no job to resume."))
    try:
        resume_job(session, run.job)
    except ApiError as exc:
        return _action_failed(request, session, run_id, exc)
    return RedirectResponse(f"/runs/{run_id}?notice=Resumed+from+the+last+checkpoint", status_code=303)


@router.get("/runs/{run_id}/clone")
def clone_run(run_id: int, session: SessionDep) -> RedirectResponse:
    """Open the new-run form with this run's config (edit it, then queue it)."""
    run = run_service.get_run(session, run_id)
    return RedirectResponse(f"/datasets/{run.dataset_id}/runs/new?clone={run.id}", status_code=303)


@router.get("/runs/{run_id}/official.yaml")
def run_official_yaml(run_id: int, session: SessionDep) -> Response:
    """The run's config as the official ltx-trainer YAML (a download)."""
    run = run_service.get_run(session, run_id)
    try:
        text = to_official_yaml(parse_run_config(run.config))
    except OfficialConfigError as exc:
        raise ApiError(422, "cannot_export",
                       f"This run's config cannot be written for the official trainer: {exc}") from exc
    return Response(text, media_type="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="run{run.id}_ltx_trainer.yaml"'})
