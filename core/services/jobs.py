"""Job rows at the lowest level: send, cancel, expire, serialise. The row is the truth; Celery
only carries its id. Queue new jobs with :func:`core.services.job_queue.queue_job`.

Every send records whether the broker was reached (:data:`core.queue.BROKER`), so a job queued
while the broker is away says so in its JSON (``warning``) until the sweeper sends it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Job, JobStatus
from core.queue import BROKER, send_job


def dispatch_job(session: Session, job: Job) -> None:
    """(Re-)send a committed queued job to its queue and remember the Celery id; a broker error
    is recorded as an outage (logged once) and raised."""
    try:
        task_id = send_job(job.id, job.queue)
    except Exception as exc:  # kombu/redis/OS errors come in many types
        BROKER.failed(exc)
        raise
    BROKER.reached()
    job.celery_id = task_id
    session.commit()


def never_sent(job: Job) -> bool:
    """A queued job the broker never took (queued while it was away): the sweeper sends it."""
    return job.status == JobStatus.queued.value and job.celery_id is None


def dispatch_warning(job: Job) -> str | None:
    """Why a queued job waits beyond the queue: the broker is unreachable (None otherwise)."""
    return BROKER.job_warning() if never_sent(job) else None


def request_cancel(session: Session, job: Job) -> Job:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops between steps."""
    status = JobStatus(job.status)
    if status is JobStatus.queued:
        job.status = JobStatus.cancelled.value
        job.finished_at = datetime.now(UTC)
    elif status is JobStatus.running:
        job.status = JobStatus.cancelling.value
    session.commit()
    return job


def mark_stale_jobs(session: Session, timeout_s: int) -> list[Job]:
    """Running or cancelling jobs whose worker stopped beating become ``interrupted``."""
    cutoff = datetime.now(UTC) - timedelta(seconds=timeout_s)
    live = (JobStatus.running.value, JobStatus.cancelling.value)
    stale = []
    for job in session.scalars(select(Job).where(Job.status.in_(live))):
        beat = job.heartbeat_at or job.started_at or job.created_at
        if beat.tzinfo is None:  # SQLite returns naive datetimes
            beat = beat.replace(tzinfo=UTC)
        if beat < cutoff:
            job.status = JobStatus.interrupted.value
            job.error = job.error or "The worker stopped responding (no heartbeat); the job can be resumed."
            job.finished_at = datetime.now(UTC)
            stale.append(job)
    session.commit()
    return stale


def job_to_dict(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "queue": job.queue,
        "status": job.status,
        "progress": job.progress,
        "step": job.step,
        "total": job.total,
        "eta_s": job.eta_s,
        "message": job.message,
        "error": job.error,
        "worker": job.worker,
        "warning": dispatch_warning(job),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }
