"""Which workers are up, and what a queued job waits for when none serves its queue.

Each Celery worker announces itself (``worker/announce.py``): a ``workers`` row with its queues,
GPUs, host and pid, its heartbeat refreshed every ``AVLORA_HEARTBEAT_INTERVAL_S`` seconds, and
deleted when it stops cleanly. A row whose heartbeat is older than :func:`worker_timeout_s`
belongs to a worker that died; ``avlora serve`` also deletes the row of its own worker the
moment that process ends.

A queued job whose queue no live worker serves would otherwise wait with no word:
:func:`waiting_for` says why and what to do, and the message goes away as soon as a worker that
serves the queue announces itself. ``avlora serve`` tells this module about the worker it runs
and restarts (:func:`set_embedded_worker`), so on the embedded default the message says the studio
is (re)starting its worker instead of asking the person to start one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, object_session

from core.config import get_settings
from core.models import Job, JobStatus, Worker

WORKER_TIMEOUT_MIN_S = 10.0  # a worker silent this long (or 3 beats, if longer) counts as gone
FORGET_AFTER = timedelta(hours=1)  # rows of workers dead this long are deleted when another starts


@dataclass(frozen=True)
class EmbeddedWorker:
    """The worker ``avlora serve`` runs in this process's care: its queues, and how the last one
    ended while the studio is starting it again (None while the first one starts)."""

    queues: frozenset[str]
    ended: str | None = None


_embedded: EmbeddedWorker | None = None


def set_embedded_worker(queues: Iterable[str] | None, ended: str | None = None) -> None:
    """Called by ``avlora serve``: the queues its own worker serves (None: it runs none)."""
    global _embedded
    _embedded = EmbeddedWorker(frozenset(queues), ended) if queues is not None else None


def embedded_worker() -> EmbeddedWorker | None:
    return _embedded


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value  # SQLite drops the zone


def worker_timeout_s() -> float:
    """Seconds without a heartbeat after which a worker counts as gone: three beats, at least 10 s."""
    return max(WORKER_TIMEOUT_MIN_S, 3 * get_settings().heartbeat_interval_s)


# --- written by the worker ---------------------------------------------------------------------


def announce_worker(session: Session, *, name: str, host: str, pid: int, queues: Iterable[str],
                    gpus: Iterable[str]) -> int:
    """Add this worker's row (committed) and forget rows of workers long dead; returns its id."""
    now = _now()
    session.execute(delete(Worker).where(Worker.heartbeat_at < now - FORGET_AFTER))
    session.execute(delete(Worker).where(Worker.host == host, Worker.pid == pid))  # an earlier announce
    row = Worker(name=name, host=host, pid=pid, queues=sorted(queues), gpus=list(gpus),
                 started_at=now, heartbeat_at=now)
    session.add(row)
    session.commit()
    return row.id


def beat_worker(session: Session, worker_id: int) -> bool:
    """Refresh the worker's heartbeat; False when its row is gone (the worker announces itself again)."""
    row = session.get(Worker, worker_id)
    if row is None:
        return False
    row.heartbeat_at = _now()
    session.commit()
    return True


def retire_worker(session: Session, worker_id: int) -> None:
    """A worker stopping cleanly deletes its row: from now on it serves nothing."""
    session.execute(delete(Worker).where(Worker.id == worker_id))
    session.commit()


def forget_worker_process(session: Session, host: str, pid: int) -> None:
    """Delete the row of the worker process ``pid`` on ``host``, which is known to have ended."""
    session.execute(delete(Worker).where(Worker.host == host, Worker.pid == pid))
    session.commit()


# --- read by the studio ------------------------------------------------------------------------


def live_workers(session: Session) -> list[Worker]:
    """Workers whose heartbeat is recent, oldest first."""
    cutoff = _now() - timedelta(seconds=worker_timeout_s())
    rows = session.scalars(select(Worker).order_by(Worker.id))
    return [row for row in rows if _aware(row.heartbeat_at) >= cutoff]


def served_queues(session: Session) -> set[str]:
    """The queues at least one live worker consumes."""
    return {str(queue) for row in live_workers(session) for queue in row.queues or []}


def worker_to_dict(row: Worker) -> dict[str, Any]:
    return {"name": row.name, "host": row.host, "pid": row.pid, "queues": list(row.queues or []),
            "gpus": list(row.gpus or []), "started_at": _aware(row.started_at).isoformat(),
            "heartbeat_at": _aware(row.heartbeat_at).isoformat()}


def waiting_for(job: Job, served: set[str] | None = None) -> str | None:
    """Why a queued job is not taken: a worker gave it back saying why, or no live worker serves
    its queue (None otherwise).

    ``served`` is :func:`served_queues` when the caller has it; else it is read through the
    job's own session.
    """
    if job.status != JobStatus.queued.value:
        return None
    given_back = (job.result or {}).get("waiting")  # a worker gave it back (e.g. too few GPUs on its host)
    if given_back:
        return given_back
    if served is None:
        session = object_session(job)
        if session is None:
            return None
        served = served_queues(session)
    if job.queue in served:
        return None
    embedded = _embedded
    if embedded is not None and job.queue in embedded.queues:
        if embedded.ended is None:
            return "The studio's worker is starting: the job begins when it is ready."
        return (f"The studio's worker ended ({embedded.ended}); the studio is restarting it: "
                "the job begins when it is back.")
    return f"No worker serves the {job.queue} queue: start one with `avlora worker --queues {job.queue}`."


def processes_issues(session: Session, processes: int) -> list[dict[str, Any]]:
    """A warning for a run on ``processes`` GPUs that no host of the gpu workers up can take now
    (a run form's check; the job would wait). A host's GPUs: those its gpu workers see, summed (one
    worker per GPU, or one seeing them all). With no gpu worker up, ``waiting_for`` says it."""
    from core.names import Queue

    if processes <= 1:
        return []
    hosts: dict[str, int] = {}
    for row in live_workers(session):
        if Queue.gpu.value in (row.queues or []):
            hosts[row.host] = hosts.get(row.host, 0) + len(row.gpus or [])
    if not hosts:
        return []
    most = max(hosts.values())
    if most == 0:
        message = (f"The gpu workers up have no GPU: the {processes} processes will share one worker host's CPU "
                   "(slow; for tests and CPU hosts).")
    elif most < processes:
        message = (f"No host of the gpu workers up has {processes} GPUs (the most: {most}): the run will wait for "
                   f"a worker on a host with {processes} GPUs.")
    else:
        return []
    return [{"code": "processes_without_gpus", "severity": "warning", "message": message,
             "detail": {"processes": processes, "most_gpus_on_a_host": most}}]
