"""The embedded worker of ``avlora serve``, kept alive while the studio runs.

A worker that ends while the studio runs (the OOM killer, a crash, a ``kill``) is started again,
after 1 s, then 2, 4 ... up to 60 s when it keeps ending within a minute of its start, with one
line on the studio's output saying how it ended. What the worker left behind is cleared first:
the rest of its process group (pool processes must not run on, nor outlive the studio) and its
row in ``workers`` (so the studio stops counting it at once). A stop the studio itself asks for
(:meth:`WorkerSupervisor.stop`) is not a crash: nothing is restarted, and the worker is asked to
stop through its main process alone, so its pool processes end cleanly instead of being killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

STABLE_AFTER_S = 60.0  # a worker that ran this long before ending starts the back-off over
MAX_DELAY_S = 60.0
POLL_S = 0.5


def stop_with_parent(parent: int | None = None) -> None:
    """In the embedded worker, before exec: its own process group, and SIGTERM when the studio
    process dies however it dies (Linux ``PR_SET_PDEATHSIG``), so no worker outlives the studio.
    A studio that died between the fork and the ``prctl`` sends no signal: then the worker ends
    here (``parent``: the studio's pid, read before the fork)."""
    os.setsid()
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
        if parent is not None and os.getppid() != parent:
            os._exit(1)


def how_it_ended(returncode: int) -> str:
    """``killed by SIGKILL`` or ``exited with code 1``: what a person reads in the log."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


def restart_delay_s(quick_ends: int) -> float:
    """1, 2, 4 ... 60 s: the wait before the next start after ``quick_ends`` ends in a row."""
    return min(MAX_DELAY_S, 2.0 ** max(0, quick_ends - 1))


def say(line: str) -> None:
    print(f"WARNING:  {line}", file=sys.stderr, flush=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _forget_row(pid: int) -> None:
    """Delete the ``workers`` row of the ended worker process (best effort: it goes stale anyway)."""
    from core.db import session_scope
    from core.services.workers import forget_worker_process

    try:
        with session_scope() as session:
            forget_worker_process(session, socket.gethostname(), pid)
    except Exception as exc:  # noqa: BLE001 - the database being away must not stop the supervisor
        say(f"could not clear the ended worker's row ({type(exc).__name__}: {exc})")


class WorkerSupervisor:
    """Starts the worker ``command``, watches it from a thread and starts it again when it ends."""

    def __init__(self, command: list[str], queues: list[str], report: Callable[[str], None] = say):
        self._command, self._queues, self._report = command, queues, report
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._started = 0.0
        self._thread = threading.Thread(target=self._watch, name="worker-supervisor", daemon=True)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        self._spawn(ended=None)
        self._thread.start()

    def _spawn(self, ended: str | None) -> None:
        from core.services.workers import set_embedded_worker

        with self._lock:
            if self._stopping.is_set():
                return
            set_embedded_worker(self._queues, ended)
            studio = os.getpid()
            self._proc = subprocess.Popen(self._command, preexec_fn=lambda: stop_with_parent(studio))
            self._started = time.monotonic()

    def _watch(self) -> None:
        quick_ends = 0
        while not self._stopping.wait(POLL_S):
            proc = self._proc
            if proc is None or proc.poll() is None or self._stopping.is_set():
                continue
            lived_s = time.monotonic() - self._started
            quick_ends = 1 if lived_s >= STABLE_AFTER_S else quick_ends + 1
            delay_s = restart_delay_s(quick_ends)
            ended = how_it_ended(proc.returncode)
            _kill_group(proc.pid)
            _forget_row(proc.pid)
            self._set_ended(ended)
            self._report(f"the studio's worker ended ({ended}) after {lived_s:.0f} s; "
                         f"starting it again in {delay_s:g} s")
            if self._stopping.wait(delay_s):
                return
            self._spawn(ended)

    def _set_ended(self, ended: str) -> None:
        from core.services.workers import set_embedded_worker

        set_embedded_worker(self._queues, ended)

    def stop_restarting(self) -> None:
        """The studio is shutting down (a signal came): a worker that ends from now on, killed by
        the same signal or not, is not started again (it would outlive the studio)."""
        self._stopping.set()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the worker for good: SIGTERM to its main process (a warm shutdown that ends its pool
        processes itself), SIGKILL to the whole group after ``timeout_s`` (a job still running)."""
        from core.services.workers import set_embedded_worker

        with self._lock:
            self._stopping.set()
            proc = self._proc
        set_embedded_worker(None)
        if proc is None:
            return
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._report(f"the studio's worker did not stop within {timeout_s:g} s (a job was still "
                             "running): stopped it; the job can be resumed from its last checkpoint")
                _kill_group(proc.pid)
                proc.wait(timeout=10)
        _kill_group(proc.pid)  # pool processes left behind by a worker that had already ended
        _forget_row(proc.pid)
        self._thread.join(timeout=2 * POLL_S + 1)
