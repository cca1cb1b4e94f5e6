"""Page: every job with its status badge, progress, queue position and a link to its run, what a
queued job waits for, and the workers that are up."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.routes.deps import SessionDep
from app.templating import templates
from app.views import training_pages as pages
from core.services import job_queue, workers

router = APIRouter(include_in_schema=False)


def _workers(session) -> list[dict]:
    """The live workers, each with how long ago it last beat."""
    now = datetime.now(UTC)
    rows = [workers.worker_to_dict(row) for row in workers.live_workers(session)]
    for row in rows:
        row["beat_age"] = pages.human_seconds((now - datetime.fromisoformat(row["heartbeat_at"])).total_seconds())
    return rows


def _jobs_context(session) -> dict:
    jobs = job_queue.list_jobs(session, limit=200)
    for job in jobs:
        job["link"], job["label"] = pages.job_link(job)
        job["eta"] = pages.human_seconds(job["eta_s"]) if pages.live(job["status"]) else ""
    return {"jobs": jobs, "any_live": any(pages.live(job["status"]) for job in jobs),
            "workers": _workers(session), "no_worker": _no_worker()}


def _no_worker() -> str:
    """What the page says when no worker is up: the studio restarts its own, or start one."""
    embedded = workers.embedded_worker()
    if embedded is None:
        return "No worker is up: queued jobs wait until one starts (avlora worker --queues cpu,gpu)."
    if embedded.ended is None:
        return "The studio's worker is starting."
    return f"The studio's worker ended ({embedded.ended}); the studio is restarting it."


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep):
    """Jobs, newest first; the table refreshes itself while any job is queued or running."""
    return templates.TemplateResponse(request, "jobs.html", _jobs_context(session))


@router.get("/jobs/table", response_class=HTMLResponse)
def jobs_table(request: Request, session: SessionDep):
    """The jobs table (htmx polls it while a job is live; the answer without live jobs stops the polling)."""
    return templates.TemplateResponse(request, "partials/jobs_table.html", _jobs_context(session))
