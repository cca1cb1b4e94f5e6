"""JSON API v1: jobs (list with queue positions, one job, cancel, resume, checkpoint now, sample
now), logs and live events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.routes.deps import SessionDep
from app.views.events import Cursor, JobEventFeed
from core.config import get_settings
from core.db import session_scope
from core.services import job_queue
from core.services.job_actions import CHECKPOINT_NOW, SAMPLE_NOW, request_now, resume_job
from core.services.jobs import request_cancel

router = APIRouter(prefix="/api/v1", tags=["jobs"])


@router.get("/jobs")
def list_jobs(session: SessionDep, status: str | None = None, kind: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    """Jobs, newest first, with status, progress, GPU, run and position in their queue."""
    return job_queue.list_jobs(session, status=status, kind=kind, limit=limit)


@router.get("/jobs/{job_id}")
def read_job(job_id: int, session: SessionDep) -> dict[str, Any]:
    """A background job: status, progress, step, total, eta_s, error, worker, GPU, run, queue position."""
    return job_queue.job_summary(job_queue.get_job(session, job_id), job_queue.queue_positions(session))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(job_id: int, session: SessionDep) -> dict[str, Any]:
    """Ask a job to stop: a queued job is cancelled at once, a running one between steps."""
    job = request_cancel(session, job_queue.get_job(session, job_id))
    return job_queue.job_summary(job, job_queue.queue_positions(session))


@router.post("/jobs/{job_id}/resume", status_code=201)
def resume(job_id: int, session: SessionDep) -> dict[str, Any]:
    """A failed, cancelled or interrupted job continues from its last checkpoint as a new attempt -> the new job."""
    new_job = resume_job(session, job_queue.get_job(session, job_id))
    return job_queue.job_summary(new_job, job_queue.queue_positions(session))


@router.post("/jobs/{job_id}/checkpoint-now", status_code=202)
def checkpoint_now(job_id: int, session: SessionDep) -> dict[str, Any]:
    """Ask a running training for a checkpoint (and its validation samples) at its current step.

    Stored on the job (`requests`); the worker writes it after the step in progress, and it
    arrives like any checkpoint (`run.checkpoint`, `run.sample` events). 409 unless the job is a
    running training.
    """
    job = request_now(session, job_queue.get_job(session, job_id), CHECKPOINT_NOW)
    return job_queue.job_summary(job, job_queue.queue_positions(session))


@router.post("/jobs/{job_id}/sample-now", status_code=202)
def sample_now(job_id: int, session: SessionDep) -> dict[str, Any]:
    """Ask a running training for validation samples at its current step (`run.sample` events).

    409 unless the job is a running training with validation prompts.
    """
    job = request_now(session, job_queue.get_job(session, job_id), SAMPLE_NOW)
    return job_queue.job_summary(job, job_queue.queue_positions(session))


@router.get("/jobs/{job_id}/log")
def read_log(job_id: int, session: SessionDep, after: int = 0) -> list[dict[str, Any]]:
    """The job's log lines after line id `after`."""
    job_queue.get_job(session, job_id)
    return job_queue.job_log(session, job_id, after)


def _poll(feed: JobEventFeed):
    with session_scope() as session:
        return feed.poll(session)


@router.get("/jobs/{job_id}/events")
async def job_events(job_id: int, request: Request, html: bool = False,
                     last_event_id: str | None = Header(None)) -> StreamingResponse:
    """Server-sent events: job.status, job.progress, job.log, run.metric, run.checkpoint, run.sample.

    Send `Last-Event-ID` to continue after the last event received. Comment lines keep the
    connection alive; the stream ends once the job is final and every row was sent.
    With `html=true` (the run page's stream) each checkpoint and sample is also sent as the page's
    HTML (run.checkpoint.html, run.sample.html, after its JSON event), and job.end comes last.
    """
    settings = get_settings()
    poll_s, heartbeat_s = settings.sse_poll_s, settings.sse_heartbeat_s
    feed = JobEventFeed(job_id, Cursor.parse(last_event_id), html=html)
    first = await run_in_threadpool(_poll, feed)  # 404 before the stream starts

    async def stream():
        yield "retry: 2000\n\n"
        for event in first:
            yield event.encode()
        last_sent = time.monotonic()
        while not feed.finished:
            await asyncio.sleep(poll_s)
            if await request.is_disconnected():
                return
            events = await run_in_threadpool(_poll, feed)
            for event in events:
                yield event.encode()
            if events:
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent >= heartbeat_s:
                yield ": heartbeat\n\n"
                last_sent = time.monotonic()

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
