"""Queueing GPU jobs and listing jobs with their place in the queue.

:func:`queue_job` commits the job row first and then sends its id to the broker. If the broker
cannot be reached the row stays ``queued`` and the sweeper (:mod:`core.services.sweeper`) sends
it once the broker is back: a job is never lost because the broker was restarting. Meanwhile the
job's JSON (``warning``) and its log say so; the process log says it once per outage.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import get_or_404
from core.errors import InvalidInput
from core.models import Job, JobStatus, LogLine, PreprocessRun, TrainingRun
from core.names import JobKind, Queue
from core.services.jobs import dispatch_job, dispatch_warning, job_to_dict
from core.services.run_records import add_log_line
from core.services.workers import waiting_for

log = logging.getLogger(__name__)

MAX_LIST = 500


def add_job(session: Session, kind: JobKind, queue: Queue, params: dict[str, Any]) -> Job:
    """Add a queued job row (flushed, not committed): commit it with the rows that point at it,
    then :func:`send_job_after_commit`. ``kind`` and ``queue`` are stored as their plain names."""
    job = Job(kind=JobKind(kind).value, queue=Queue(queue).value, params=params, status=JobStatus.queued.value)
    session.add(job)
    session.flush()
    return job


def send_job_after_commit(session: Session, job: Job) -> None:
    """Send a committed queued job to the broker; a broker error leaves it for the sweeper, with a
    line in the job's log (the outage itself is logged once, by :func:`dispatch_job`)."""
    try:
        dispatch_job(session, job)
    except Exception as exc:  # noqa: BLE001 - kombu/redis raise many types; the row is safe, the sweeper sends it
        session.rollback()
        log.debug("job %s is queued but the broker did not take it (%s)", job.id, exc)
        text = dispatch_warning(job) or "the broker did not take the job: it is queued and will be sent again"
        add_log_line(session, job.id, "warning", f"{text[:1].upper()}{text[1:]}.")
        session.commit()


def queue_job(session: Session, kind: JobKind, queue: Queue, params: dict[str, Any]) -> Job:
    """Write a queued job row, commit it, then try to send it (see :func:`send_job_after_commit`)."""
    job = add_job(session, kind, queue, params)
    session.commit()
    send_job_after_commit(session, job)
    return job


def get_job(session: Session, job_id: int) -> Job:
    """The job with ``job_id`` or :class:`NotFound`."""
    return get_or_404(session, Job, job_id, "job")


def run_link(job: Job) -> dict[str, Any] | None:
    """What the job works on: ``{"type": "training"|"preprocess", "id"}`` from its params."""
    params = job.params or {}
    if "run_id" in params:
        return {"type": "training", "id": int(params["run_id"])}
    if "preprocess_run_id" in params:
        return {"type": "preprocess", "id": int(params["preprocess_run_id"])}
    return None


def job_subject(job: Job) -> dict[str, Any] | None:
    """What a job without a run works on: ``{"type": "clip"|"key_report", "id"}`` from its params."""
    params = job.params or {}
    if "clip_id" in params:
        return {"type": "clip", "id": int(params["clip_id"])}
    if params.get("report_ids"):
        return {"type": "key_report", "id": int(params["report_ids"][0])}
    return None


def queue_positions(session: Session) -> dict[int, int]:
    """1-based position of every queued job among the queued jobs of its queue (oldest first)."""
    positions: dict[int, int] = {}
    counters: dict[str, int] = {}
    rows = session.execute(select(Job.id, Job.queue).where(Job.status == JobStatus.queued.value).order_by(Job.id))
    for job_id, queue in rows:
        counters[queue] = counters.get(queue, 0) + 1
        positions[job_id] = counters[queue]
    return positions


def job_summary(job: Job, positions: dict[int, int] | None = None) -> dict[str, Any]:
    """The API form of a job plus its GPU, attempt, heartbeat, result, run, queue position and the
    requests still pending (``{"checkpoint"|"sample": asked_at}``)."""
    data = job_to_dict(job)
    data.update({
        "gpu": job.gpu,
        "attempt": job.attempt,
        "heartbeat_at": job.heartbeat_at.isoformat() if job.heartbeat_at else None,
        "result": job.result,
        "run": run_link(job),
        "subject": job_subject(job),
        "queue_position": (positions or {}).get(job.id),
        "requests": dict(job.requests or {}),
    })
    data["waiting_for"] = waiting_for(job)  # a queued job no live worker can take says why
    return data


def list_jobs(session: Session, *, status: str | None = None, kind: str | None = None,
              limit: int = 100) -> list[dict[str, Any]]:
    """Jobs newest first (optionally of one status or kind), each with its queue position."""
    if status is not None and status not in {s.value for s in JobStatus}:
        raise InvalidInput("invalid_status",
                           f"Unknown job status {status!r}: use one of {', '.join(s.value for s in JobStatus)}.")
    query = select(Job).order_by(Job.id.desc()).limit(max(1, min(limit, MAX_LIST)))
    if status:
        query = query.where(Job.status == status)
    if kind:
        query = query.where(Job.kind == kind)
    positions = queue_positions(session)
    return [job_summary(job, positions) for job in session.scalars(query)]


def job_log(session: Session, job_id: int, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
    """A job's log lines after line ``after_id``, oldest first."""
    query = (select(LogLine).where(LogLine.job_id == job_id, LogLine.id > after_id)
             .order_by(LogLine.id).limit(limit))
    return [log_line_to_dict(line) for line in session.scalars(query)]


def log_line_to_dict(line: LogLine) -> dict[str, Any]:
    return {"id": line.id, "ts": line.ts.isoformat() if line.ts else None, "level": line.level, "text": line.text}


def run_of_job(session: Session, job: Job) -> PreprocessRun | TrainingRun | None:
    """The preprocess or training run the job works on, if any."""
    link = run_link(job)
    if link is None:
        return None
    model = TrainingRun if link["type"] == "training" else PreprocessRun
    return session.get(model, link["id"])
