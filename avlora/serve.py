"""``avlora serve`` and ``avlora worker``: processes of the studio."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

from core.config import get_settings
from core.names import QUEUES

EVERY_QUEUE = ",".join(QUEUES)


def worker_command(queues: str, concurrency: int) -> list[str]:
    """The command line of a Celery worker for ``queues`` (comma-separated)."""
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)} (use {', '.join(QUEUES)})")
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", ",".join(wanted), "-c", str(concurrency), "--prefetch-multiplier", "1",
        "-n", f"avlora-{'-'.join(wanted)}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]


def _stop_with_parent() -> None:
    """In the embedded worker, before exec: its own process group, and SIGTERM when the studio
    process dies however it dies (Linux ``PR_SET_PDEATHSIG``), so no worker outlives the studio."""
    os.setsid()
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def run_worker(queues: str = EVERY_QUEUE, concurrency: int = 1) -> int:
    """Run a Celery worker in the foreground (replaces this process)."""
    cmd = worker_command(queues, concurrency)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def serve(host: str | None = None, port: int | None = None, with_worker: bool = True,
          open_queues: str = EVERY_QUEUE) -> int:
    """Migrate, start the embedded worker, and serve the web app until interrupted."""
    import uvicorn

    from app.security import check_access_settings
    from core.migrate import upgrade

    settings = get_settings()
    host = host or settings.host
    port = port or settings.port
    try:
        settings.check_bind_address(host)
        check_access_settings(settings)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade()
    worker = None
    if with_worker:
        # One worker subprocess for both queues; concurrency 2 so a clip is probed while a
        # (toy) training run holds the other slot.
        worker = subprocess.Popen(worker_command(open_queues, 2), preexec_fn=_stop_with_parent)
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"AV-LoRA Studio: http://{shown_host}:{port}/  (data in {settings.data_dir})", flush=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown, which would skip the clean-up
    # below and leave the worker running: turn SIGTERM into a normal exit instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # a bounded graceful shutdown: open event streams (live logs) must not hold it forever
        uvicorn.run("app.main:create_app", factory=True, host=host, port=port, log_level="info",
                    timeout_graceful_shutdown=5)
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            try:
                worker.wait(timeout=10)  # a warm shutdown; then it is killed
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
    return 0
