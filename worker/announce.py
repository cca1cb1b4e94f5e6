"""A worker announces itself to the studio: a ``workers`` row (queues, GPUs, host, pid) written
when Celery is ready to consume, its heartbeat refreshed by a small thread, and the row deleted
the moment a stop is asked (from then on the worker takes no new job).

This runs in Celery's main process, which forks the pool processes that run jobs, and may fork
new ones at any time. So the thread uses an engine of its own, disposed after every beat: no
pooled database connection is ever inherited by (and shared with) a pool process.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import threading

from celery import signals

from core.config import get_settings
from core.db import make_engine
from core.services import workers

log = logging.getLogger(__name__)

NVIDIA_SMI_TIMEOUT_S = 10


def visible_gpus() -> list[str]:
    """Names of the GPUs this worker may use (``nvidia-smi``, without loading torch: the pool
    processes fork from this one and must not inherit a CUDA context); empty on a CPU host."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = [tuple(part.strip() for part in line.split(",", 1)) for line in out.splitlines() if "," in line]
    allowed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if allowed is not None and all(item.strip().isdigit() for item in allowed.split(",") if item.strip()):
        wanted = [item.strip() for item in allowed.split(",") if item.strip()]
        gpus = [gpu for gpu in gpus if gpu[0] in wanted]
    return [name for _index, name in gpus]


class Announcer:
    """The worker's row and the thread that keeps its heartbeat fresh."""

    def __init__(self, name: str, queues: list[str]):
        settings = get_settings()
        self.name, self.queues = name, sorted(queues)
        self.host, self.pid = socket.gethostname(), os.getpid()
        self._interval_s = settings.heartbeat_interval_s
        self._engine = make_engine(settings.sqlalchemy_url)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-announce", daemon=True)
        self._worker_id: int | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, wait_s: float = 0.0) -> None:
        """Stop beating and delete the row (done by the thread; ``wait_s`` waits for it)."""
        self._stop.set()
        if wait_s and self._thread.is_alive():
            self._thread.join(timeout=wait_s)

    def _session(self):
        from sqlalchemy.orm import Session

        return Session(self._engine, expire_on_commit=False)

    def _announce(self) -> None:
        with self._session() as session:
            self._worker_id = workers.announce_worker(
                session, name=self.name, host=self.host, pid=self.pid, queues=self.queues, gpus=visible_gpus())
        log.info("announced worker %s (queues %s) to the studio", self.name, ",".join(self.queues))

    def _beat(self) -> None:
        if self._worker_id is None:
            self._announce()
            return
        with self._session() as session:
            if not workers.beat_worker(session, self._worker_id):
                self._worker_id = None  # someone deleted the row (a studio that saw us as dead)
        if self._worker_id is None:
            self._announce()

    def _retire(self) -> None:
        if self._worker_id is not None:
            with self._session() as session:
                workers.retire_worker(session, self._worker_id)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._beat()
            except Exception:  # the database is briefly away: try again at the next beat
                log.exception("worker heartbeat failed")
            finally:
                self._engine.dispose()
            self._stop.wait(self._interval_s)
        try:
            self._retire()
        except Exception:  # the row then goes stale on its own
            log.exception("could not remove this worker's row")
        finally:
            self._engine.dispose()


_announcer: Announcer | None = None


@signals.worker_ready.connect
def _on_worker_ready(sender, **_kwargs) -> None:
    """Celery consumes now: announce the worker (``sender`` is its consumer)."""
    global _announcer
    queues = list(sender.app.amqp.queues.consume_from or sender.app.amqp.queues)
    _announcer = Announcer(str(sender.hostname), queues)
    _announcer.start()


@signals.worker_shutting_down.connect
def _on_worker_shutting_down(**_kwargs) -> None:
    """A stop was asked (inside the signal handler: only tell the thread, it deletes the row)."""
    if _announcer is not None:
        _announcer.stop()


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_kwargs) -> None:
    """The worker is ending: make sure its row is gone before the process exits."""
    if _announcer is not None:
        _announcer.stop(wait_s=5.0)
