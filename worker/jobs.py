"""Running one job row: claim it, beat a heartbeat, report progress, honour cancel, finish.

A handler receives a :class:`JobContext` and the job's params. It calls ``ctx.progress(...)``
as it goes and ``ctx.check_cancelled()`` between units of work; the runner turns the outcome
into the row's final state. Re-running a job id never runs it twice at once: a row that another
live worker holds (fresh heartbeat) is left alone. Actions a person asks of a running job
(checkpoint now, sample now: the row's ``requests``) reach the handler through
:meth:`JobContext.take_requests`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from core.config import get_settings
from core.db import session_scope
from core.models import Job, JobStatus

log = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a handler when the user asked the job to stop."""


class JobFailed(Exception):
    """A failure whose message is meant for a person (no traceback shown)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class JobContext:
    """What a handler may do with its job row while it runs."""

    def __init__(self, job_id: int):
        self.job_id = job_id
        self._cancel = threading.Event()
        self._stop = threading.Event()
        self._started = time.monotonic()
        self._interval_s = get_settings().heartbeat_interval_s
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{job_id}", daemon=True)
        self._requests_lock = threading.Lock()
        self._requests: dict[str, str] = {}  # as last read from the row: name -> when asked
        self._taken: dict[str, str] = {}  # handed to the handler and not yet cleared on the row

    # --- heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                with session_scope() as session:
                    job = session.get(Job, self.job_id)
                    if job is None:
                        return
                    job.heartbeat_at = _now()
                    self.see_row(job)
            except Exception:  # a lost database connection must not kill the job; retry next beat
                log.exception("heartbeat for job %s failed", self.job_id)

    # --- for handlers ----------------------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise JobCancelled()

    def see_row(self, job: Job) -> None:
        """Take note of what the person asked on the job row just read: cancel, requests."""
        if job.status == JobStatus.cancelling.value:
            self._cancel.set()
        with self._requests_lock:
            self._requests = {str(name): str(asked) for name, asked in (job.requests or {}).items()}

    def take_requests(self) -> dict[str, str]:
        """Requests seen on the row and not handed out yet (``name -> when asked``).

        Each request is handed out once; :meth:`clear_request` removes it from the row when done.
        A request asked again after it was handed out (a new time) is handed out again.
        """
        with self._requests_lock:
            fresh = {name: asked for name, asked in self._requests.items() if self._taken.get(name) != asked}
            self._taken.update(fresh)
        return fresh

    def clear_request(self, name: str, asked_at: str) -> None:
        """Remove request ``name`` from the row once carried out, unless it was asked again since."""
        with session_scope() as session:
            job = session.get(Job, self.job_id, with_for_update=True)
            pending = dict(job.requests or {})
            if pending.get(name) == asked_at:
                del pending[name]
                job.requests = pending or None

    def progress(self, step: int, total: int, message: str = "", **result: Any) -> None:
        """Record progress (step of total) and an ETA; also picks up a pending cancel and requests."""
        elapsed = time.monotonic() - self._started
        with session_scope() as session:
            job = session.get(Job, self.job_id)
            job.step, job.total = step, total
            job.progress = (step / total) if total else 0.0
            job.eta_s = (elapsed / step * (total - step)) if step and total else None
            job.heartbeat_at = _now()
            if message:
                job.message = message
            if result:
                job.result = {**(job.result or {}), **result}
            self.see_row(job)


def claim_job(job_id: int, heartbeat_timeout_s: float) -> bool:
    """Move a job to running under this worker; False if it is final or live elsewhere."""
    with session_scope() as session:
        job = session.get(Job, job_id, with_for_update=True)
        if job is None:
            log.warning("job %s does not exist", job_id)
            return False
        status = JobStatus(job.status)
        if status is JobStatus.queued:
            pass
        elif status in (JobStatus.running, JobStatus.cancelling):
            beat = _aware(job.heartbeat_at) or _aware(job.started_at)
            if beat and beat > _now() - timedelta(seconds=heartbeat_timeout_s):
                log.info("job %s is held by live worker %s", job_id, job.worker)
                return False
        else:
            log.info("job %s is already %s", job_id, status.value)
            return False
        job.status = JobStatus.running.value
        job.worker = worker_name()
        job.attempt += 1
        job.started_at = job.started_at or _now()
        job.heartbeat_at = _now()
        job.error = None
        return True


def run_job(job_id: int, handlers: dict[str, Callable[[JobContext, dict[str, Any]], dict | None]],
            heartbeat_timeout_s: float) -> str | None:
    """Run job ``job_id`` with the handler for its kind; returns the final status (or None)."""
    if not claim_job(job_id, heartbeat_timeout_s):
        return None
    with session_scope() as session:
        job = session.get(Job, job_id)
        kind, params = job.kind, dict(job.params or {})
    handler = handlers.get(kind)
    ctx = JobContext(job_id)
    ctx.start_heartbeat()
    status, error, result = JobStatus.succeeded, None, None
    try:
        if handler is None:
            raise JobFailed(f"No worker handler for jobs of kind {kind!r}.")
        result = handler(ctx, params)
    except JobCancelled:
        status = JobStatus.cancelled
    except JobFailed as exc:
        status, error = JobStatus.failed, str(exc)
    except OSError as exc:  # disk full, permissions, ...: say what it is
        status, error = JobStatus.failed, f"I/O error: {exc.strerror or exc} ({exc.filename or 'no file'})"
        log.exception("job %s failed", job_id)
    except Exception as exc:  # noqa: BLE001 - whatever a handler raises ends the job as failed, with its message
        status, error = JobStatus.failed, f"{type(exc).__name__}: {exc}"
        log.error("job %s failed:\n%s", job_id, traceback.format_exc())
    finally:
        ctx.stop_heartbeat()
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status = status.value
        job.error = error
        job.finished_at = _now()
        job.requests = None  # what was still asked of it ends with it
        if status is JobStatus.succeeded:
            job.progress = 1.0
            job.eta_s = 0.0
        if result:
            job.result = {**(job.result or {}), **result}
    return status.value
