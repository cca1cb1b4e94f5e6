"""Running one job row: claim it, beat a heartbeat, report progress, honour cancel, finish.

A handler receives a :class:`JobContext` and the job's params. It calls ``ctx.progress(...)``
as it goes and ``ctx.check_cancelled()`` between units of work; the runner turns the outcome
into the row's final state. Re-running a job id never runs it twice at once: a row that another
live worker holds (fresh heartbeat) is left alone. Actions a person asks of a running job
(checkpoint now, sample now: the row's ``requests``) reach the handler through
:meth:`JobContext.take_requests`.

A handler whose work has long stretches without a cancellation point (loading and compiling a
model, sampling) calls :meth:`JobContext.interrupt_on_cancel`: from then on, a cancel that no
cancellation point takes up within a few seconds is raised into the handler's thread by the
heartbeat thread, as :class:`JobInterrupted` (the way Ctrl-C raises ``KeyboardInterrupt``), and
the job ends ``cancelled``. The worker process lives on and takes the next job.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import socket
import sys
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


class JobInterrupted(BaseException):
    """A cancel raised into the handler's thread because it reached no cancellation point in time.

    A BaseException, like ``KeyboardInterrupt``: no ``except Exception`` on its way (a library's
    fallback, a handler's error mapping) swallows it, while ``finally`` blocks and the
    ``except BaseException`` clean-ups (temporary files, database sessions) still run."""


class JobRanksLost(Exception):
    """A process of a run on several processes died and the others were ended: the job ends
    ``interrupted`` (resumable, like a job whose worker died); the message says which and how."""


class JobRequeued(Exception):
    """This worker cannot run the job (e.g. its host has too few GPUs): the job goes back to the
    queue, its message saying what it waits for, and is sent again to the workers later."""


# A cancel not taken up by a cancellation point within this long interrupts the handler.
CANCEL_GRACE_S = 3.0
# An interrupt that did not end the handler is raised again this often: one that lands in a weakref
# callback or a __del__ is only printed ("Exception ignored in ..."; seen in torch.compile).
INTERRUPT_REPEAT_S = 2.0
# How often the heartbeat looks again when an import blocks an interrupt.
INTERRUPT_RETRY_S = 0.2


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _import_in_progress() -> bool:
    """True while any module is still executing its body: an import cut short half-way can leave a
    C extension (torch) loaded but its module gone, and the next job could not import it again."""
    for module in list(sys.modules.values()):
        spec = getattr(module, "__dict__", {}).get("__spec__")
        if getattr(spec, "_initializing", False):
            return True
    return False


def _raise_in_thread(thread_id: int, exc: type[BaseException] | None) -> None:
    """Make ``thread_id`` raise ``exc`` at its next Python instruction; None drops one not raised yet."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc else None)


class CancelInterrupter:
    """Raises :class:`JobInterrupted` into the handler's thread when a cancel waits too long.

    Armed by :meth:`arm` with the frame of the handler that asks for it; a cancel seen on the row
    (:meth:`cancel_seen`) that no cancellation point takes up (:meth:`taken_up`) within
    ``CANCEL_GRACE_S`` plus the time the handler said it may need (:meth:`allow`, e.g. a training
    step) is raised into that thread, once, and again every ``INTERRUPT_REPEAT_S`` should it be
    caught. Never while a module is being imported, and never once the handler's frame has left
    the stack: the runner then disarms it and drops a raise not delivered yet (:meth:`disarm`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: int | None = None
        self._frame = None  # the handler's frame; held only while armed
        self._seen_at: float | None = None
        self._taken_up = False
        self._extra_s = 0.0
        self._raised_at: float | None = None

    def arm(self, frame) -> None:
        with self._lock:
            self._thread, self._frame = threading.get_ident(), frame

    def disarm(self) -> None:
        with self._lock:
            if self._thread is not None:
                _raise_in_thread(self._thread, None)
            self._thread = self._frame = None

    def cancel_seen(self) -> None:
        if self._seen_at is None:
            self._seen_at = time.monotonic()

    def taken_up(self) -> None:
        self._taken_up = True

    def allow(self, seconds: float) -> None:
        self._extra_s = max(0.0, seconds)

    @property
    def raised(self) -> bool:
        return self._raised_at is not None

    def due_at(self) -> float | None:
        """When the next interrupt is due (monotonic), or None when none is to come."""
        if self._frame is None or self._seen_at is None or self._taken_up:
            return None
        if self._raised_at is not None:
            return self._raised_at + INTERRUPT_REPEAT_S
        return self._seen_at + CANCEL_GRACE_S + self._extra_s

    def fire_if_due(self) -> bool:
        """Raise into the handler's thread if an interrupt is due and safe now; True if it was."""
        with self._lock:
            due = self.due_at()
            if due is None or time.monotonic() < due or not self._handler_running() or _import_in_progress():
                return False
            _raise_in_thread(self._thread, JobInterrupted)
            self._raised_at = time.monotonic()
            return True

    def _handler_running(self) -> bool:
        frame = sys._current_frames().get(self._thread)
        while frame is not None:
            if frame is self._frame:
                return True
            frame = frame.f_back
        return False


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
        self.interrupter = CancelInterrupter()

    # --- heartbeat -------------------------------------------------------------------------
    def start_heartbeat(self) -> None:
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        """Beat every interval; in between, wake when an interrupt falls due (see :class:`CancelInterrupter`)."""
        next_beat = time.monotonic() + self._interval_s
        while not self._stop.wait(self._until_next_wake(next_beat)):
            if time.monotonic() >= next_beat:
                if not self._write_heartbeat():
                    return
                next_beat = time.monotonic() + self._interval_s
            if self.interrupter.fire_if_due():
                log.warning("job %s: cancelled, and no cancellation point came in time: interrupted", self.job_id)

    def _until_next_wake(self, next_beat: float) -> float:
        now, due = time.monotonic(), self.interrupter.due_at()
        if due is not None and due < next_beat:
            return max(due - now, INTERRUPT_RETRY_S)
        return max(next_beat - now, 0.0)

    def _write_heartbeat(self) -> bool:
        """Stamp the row and read what was asked of it; False once the row is gone."""
        try:
            with session_scope() as session:
                job = session.get(Job, self.job_id)
                if job is None:
                    return False
                job.heartbeat_at = _now()
                self.see_row(job)
        except Exception:  # a lost database connection must not kill the job; retry next beat
            log.exception("heartbeat for job %s failed", self.job_id)
        return True

    # --- for handlers ----------------------------------------------------------------------
    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        if self._cancel.is_set():
            self.interrupter.taken_up()
            raise JobCancelled()

    def interrupt_on_cancel(self) -> None:
        """From now until the calling handler returns, a cancel that reaches no cancellation point
        within a few seconds is raised into it as :class:`JobInterrupted` (see the module doc).
        Call it after the handler's own imports (an import is never interrupted, only waited for)."""
        self.interrupter.arm(sys._getframe(1))

    def stopping_for_cancel(self) -> None:
        """The handler took up the cancel and stops at a point of its choosing (a training run
        checkpoints first): it is not interrupted any more."""
        self.interrupter.taken_up()

    def allow_time_to_stop(self, seconds: float) -> None:
        """The handler's next cancellation point may be up to ``seconds`` away (a training step):
        an interrupt waits that much longer than the grace."""
        self.interrupter.allow(seconds)

    def see_row(self, job: Job) -> None:
        """Take note of what the person asked on the job row just read: cancel, requests."""
        if job.status == JobStatus.cancelling.value:
            self._cancel.set()
            self.interrupter.cancel_seen()
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
        try:
            result = handler(ctx, params)
        finally:
            ctx.interrupter.disarm()  # inside the outer try: an interrupt delivered here is still caught
    except (JobCancelled, JobInterrupted):
        status = JobStatus.cancelled
    except JobRanksLost as exc:
        status, error = JobStatus.interrupted, str(exc)
    except JobRequeued as exc:
        status, error = JobStatus.queued, None
        result = {"waiting": str(exc)}
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
    if ctx.interrupter.raised and status is JobStatus.failed:  # a clean-up failed on the interrupt's way out
        log.warning("job %s failed after it was interrupted (it ends cancelled): %s", job_id, error)
        status, error = JobStatus.cancelled, None
    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status = status.value
        job.error = error
        job.finished_at = _now()
        job.requests = None  # what was still asked of it ends with it
        if status is JobStatus.queued:  # given back: any worker may take it (the sweeper sends it again)
            job.finished_at, job.worker, job.message = None, None, (result or {}).get("waiting")
        if status is JobStatus.succeeded:
            job.progress = 1.0
            job.eta_s = 0.0
        if result:
            job.result = {**(job.result or {}), **result}
    if ctx.interrupter.raised:
        gc.collect()  # what the interrupted handler held (a model, its GPU memory) goes before the next job
    return status.value
