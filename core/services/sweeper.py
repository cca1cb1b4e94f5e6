"""Crash safety: jobs whose worker died become ``interrupted``; queued jobs whose task was lost
are sent again.

:func:`sweep` is one pass (tests call it directly); :func:`sweeper_lifespan` runs it every
``AVLORA_SWEEP_INTERVAL_S`` seconds inside the web process. Both halves are safe to run from
several processes at once:

- a ``running`` or ``cancelling`` job whose heartbeat is older than the heartbeat timeout is
  marked ``interrupted`` (``core.services.jobs.mark_stale_jobs``), so nothing shows "running"
  forever after a ``kill -9`` or a reboot; the person resumes it (``POST /jobs/{id}/resume``),
  or, with ``AVLORA_AUTO_RESUME_ATTEMPTS`` > 0, the sweeper resumes a job that was running (not
  one being cancelled) by itself, that many times in a row at most;
- a ``queued`` job the broker never took (it could not be reached when the job was queued) is
  sent at the first pass that reaches the broker; one older than ``AVLORA_REDISPATCH_AFTER_S``
  whose task is not waiting in the broker (the broker restarted without its data, the worker that
  reserved it died) is dispatched again. A duplicate message is harmless: the worker refuses a job
  that is final or held by a live worker.

While the broker is unreachable a pass skips the sending and the log says so once, when the outage
starts, and once when it ends (:class:`core.queue.BrokerOutage`), not with a traceback per pass.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Job, JobStatus
from core.queue import BROKER, BROKER_CONNECT_TIMEOUT_S, BROKER_SOCKET_TIMEOUT_S, ping_broker
from core.services.job_actions import auto_resume
from core.services.jobs import dispatch_job, mark_stale_jobs, never_sent
from core.services.run_records import add_log_line

log = logging.getLogger(__name__)

REDIS_PRIORITY_SEPARATOR = "\x06\x16"
REDIS_PRIORITY_STEPS = (3, 6, 9)
NEVER_SENT_GRACE_S = 5.0  # a job is committed before it is sent: leave the request that queued it time to send it


@dataclass
class SweepReport:
    """What one pass did: ids of jobs marked interrupted, of jobs sent again, and the
    interrupted jobs resumed automatically (old job id -> new job id)."""

    interrupted: list[int] = field(default_factory=list)
    redispatched: list[int] = field(default_factory=list)
    resumed: dict[int, int] = field(default_factory=dict)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _message_ids_in_redis(url: str, queue: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=BROKER_CONNECT_TIMEOUT_S,
                                  socket_timeout=BROKER_SOCKET_TIMEOUT_S)
    try:
        ids: set[str] = set()
        keys = [queue] + [f"{queue}{REDIS_PRIORITY_SEPARATOR}{p}" for p in REDIS_PRIORITY_STEPS]
        for key in keys:
            for raw in client.lrange(key, 0, -1):
                try:
                    ids.add(json.loads(raw)["headers"]["id"])
                except (ValueError, KeyError, TypeError):
                    continue
        return ids
    finally:
        client.close()


def _message_ids_in_folder(folder, queue: str, wanted: set[str]) -> set[str]:
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for path in folder.glob(f"*.{queue}.msg"):
        try:
            text = path.read_text(errors="replace")
        except OSError:  # consumed while we looked
            continue
        found.update(task_id for task_id in wanted if task_id in text)
    return found


def tasks_waiting_in_broker(queue: str, task_ids: set[str]) -> set[str] | None:
    """Which of ``task_ids`` wait in ``queue`` on the broker; None when the broker cannot be inspected."""
    settings = get_settings()
    if settings.uses_file_broker:
        return _message_ids_in_folder(settings.file_broker_dir / "queue", queue, task_ids)
    url = settings.celery_broker_url
    if url.startswith(("redis://", "rediss://")):
        return _message_ids_in_redis(url, queue) & task_ids
    return None


def redispatch_lost_jobs(session: Session, older_than_s: float) -> list[int]:
    """Send every queued job the broker never took (queued while it was away) and again every
    queued job older than ``older_than_s`` whose task is not waiting in the broker.

    A broker that cannot be reached ends the pass quietly (the outage is logged once, see
    :class:`core.queue.BrokerOutage`): the jobs stay queued for the next pass.
    """
    now = datetime.now(UTC)
    queued = list(session.scalars(select(Job).where(Job.status == JobStatus.queued.value).order_by(Job.id)))
    fresh = [job for job in queued if never_sent(job)
             and _aware(job.created_at) < now - timedelta(seconds=min(older_than_s, NEVER_SENT_GRACE_S))]
    if BROKER.down and not fresh and not _ping_broker():
        return []  # still away (nothing to send: the ping notices, and logs, its return)
    sent: list[int] = []
    for job in fresh:
        if not _send(session, job, "Sent to the broker (it could not be reached when the job was queued)."):
            return sent
        sent.append(job.id)
    cutoff = now - timedelta(seconds=older_than_s)
    lost_candidates = [job for job in queued if not never_sent(job) and _aware(job.created_at) < cutoff]
    for queue in sorted({job.queue for job in lost_candidates}):
        jobs = [job for job in lost_candidates if job.queue == queue]
        waiting = _tasks_waiting(queue, {job.celery_id for job in jobs})
        if waiting is None:
            continue
        for job in jobs:
            if job.celery_id in waiting:
                continue
            if not _send(session, job, "The job's task was not in the broker (restarted or lost): sent again."):
                return sent
            sent.append(job.id)
    return sent


def _send(session: Session, job: Job, log_text: str) -> bool:
    """Dispatch ``job`` with a line in its log; False (nothing changed) when the broker is away."""
    try:
        dispatch_job(session, job)  # records the outage, or its end
    except SQLAlchemyError:
        raise
    except Exception:  # noqa: BLE001 - the broker is away (kombu/redis/OS errors): the next pass tries again
        session.rollback()
        return False
    add_log_line(session, job.id, "warning", log_text)
    session.commit()
    return True


def _tasks_waiting(queue: str, task_ids: set[str]) -> set[str] | None:
    """:func:`tasks_waiting_in_broker`, None (skip the queue) when the broker cannot be reached."""
    try:
        waiting = tasks_waiting_in_broker(queue, task_ids)
    except Exception as exc:  # noqa: BLE001 - redis/OS errors: recorded as an outage, logged once
        BROKER.failed(exc)
        return None
    if waiting is not None:
        BROKER.reached()
    return waiting


def _ping_broker() -> bool:
    """Whether the broker answers (recorded as the end of the outage, or its going on)."""
    try:
        ping_broker()
    except Exception as exc:  # noqa: BLE001 - still away
        BROKER.failed(exc)
        return False
    BROKER.reached()
    return True


def sweep(session: Session, *, heartbeat_timeout_s: float | None = None,
          redispatch_after_s: float | None = None, auto_resume_attempts: int | None = None) -> SweepReport:
    """One pass: mark stale live jobs interrupted (resuming them automatically while the
    automatic retry allows), re-dispatch lost queued jobs. Unset arguments come from the settings."""
    settings = get_settings()
    timeout = heartbeat_timeout_s if heartbeat_timeout_s is not None else settings.heartbeat_timeout_s
    attempts = auto_resume_attempts if auto_resume_attempts is not None else settings.auto_resume_attempts
    report = SweepReport()
    being_cancelled = set(session.scalars(select(Job.id).where(Job.status == JobStatus.cancelling.value)))
    stale = mark_stale_jobs(session, timeout)
    for job in stale:
        add_log_line(session, job.id, "error", job.error or "The worker stopped responding.")
        job.requests = None  # checkpoint-now / sample-now asked of a dead worker end with it
        report.interrupted.append(job.id)
    session.commit()
    for job in stale:
        if job.id in being_cancelled:  # the person asked it to stop: never restart it behind their back
            continue
        new_job = auto_resume(session, job, attempts)
        if new_job is not None:
            report.resumed[job.id] = new_job.id
    after = redispatch_after_s if redispatch_after_s is not None else settings.redispatch_after_s
    report.redispatched = redispatch_lost_jobs(session, after)
    return report


def sweep_once() -> SweepReport:
    """:func:`sweep` in a session of its own (what the web process runs periodically)."""
    from core.db import session_scope

    with session_scope() as session:
        return sweep(session)


async def _sweep_forever(interval_s: float) -> None:
    from anyio.to_thread import run_sync as run_in_threadpool

    failing = False  # a traceback for the first failed pass of a row, not for every pass
    while True:
        try:
            report = await run_in_threadpool(sweep_once)
            if report.interrupted or report.redispatched:
                log.warning("sweeper: interrupted %s, resumed %s, re-dispatched %s", report.interrupted,
                            report.resumed, report.redispatched)
            if failing:
                log.info("job sweeper passes work again")
            failing = False
        except Exception as exc:  # the database is briefly away: log it once, try again next round
            if not failing:
                log.exception("job sweeper pass failed (logged once until a pass works again)")
            else:
                log.debug("job sweeper pass failed again: %s", exc)
            failing = True
        await asyncio.sleep(interval_s)


@asynccontextmanager
async def sweeper_lifespan(_app):
    """FastAPI lifespan: run the sweeper every ``AVLORA_SWEEP_INTERVAL_S`` seconds while the app serves."""
    interval_s = get_settings().sweep_interval_s
    task = asyncio.create_task(_sweep_forever(interval_s)) if interval_s > 0 else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
