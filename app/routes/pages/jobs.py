"""Page: every job with its status badge, progress, queue position and a link to its run."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app.routes.deps import SessionDep
from app.templating import templates
from app.views import training_pages as pages
from core.services import job_queue

router = APIRouter(include_in_schema=False)


def _jobs_context(session) -> dict:
    jobs = job_queue.list_jobs(session, limit=200)
    for job in jobs:
        job["link"], job["label"] = pages.job_link(job)
        job["eta"] = pages.human_seconds(job["eta_s"]) if pages.live(job["status"]) else ""
    return {"jobs": jobs, "any_live": any(pages.live(job["status"]) for job in jobs)}


@router.get("/jobs", response_class=HTMLResponse)
def jobs_page(request: Request, session: SessionDep):
    """Jobs, newest first; the table refreshes itself while any job is queued or running."""
    return templates.TemplateResponse(request, "jobs.html", _jobs_context(session))


@router.get("/jobs/table", response_class=HTMLResponse)
def jobs_table(request: Request, session: SessionDep):
    """The jobs table (htmx polls it while a job is live; the answer without live jobs stops the polling)."""
    return templates.TemplateResponse(request, "partials/jobs_table.html", _jobs_context(session))
