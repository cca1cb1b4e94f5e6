"""``avlora serve`` and ``avlora worker``: processes of the studio."""

from __future__ import annotations

import os
import signal
import sys

from avlora.supervisor import WorkerSupervisor
from core.config import get_settings
from core.names import QUEUES

EVERY_QUEUE = ",".join(QUEUES)


def queue_names(queues: str) -> list[str]:
    """The queue names in ``queues`` (comma-separated); exits naming any unknown one."""
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(wanted) - set(QUEUES))
    if unknown:
        raise SystemExit(f"unknown queue(s): {', '.join(unknown)} (use {', '.join(QUEUES)})")
    return wanted


def worker_command(queues: str, concurrency: int) -> list[str]:
    """The command line of a Celery worker for ``queues`` (comma-separated)."""
    wanted = queue_names(queues)
    return [
        sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker",
        "-Q", ",".join(wanted), "-c", str(concurrency), "--prefetch-multiplier", "1",
        "-n", f"avlora-{'-'.join(wanted)}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
    ]


def run_worker(queues: str = EVERY_QUEUE, concurrency: int = 1) -> int:
    """Run a Celery worker in the foreground (replaces this process)."""
    from core.startup import check_database

    if (problem := check_database(get_settings())) is not None:
        print(f"error: {problem}", file=sys.stderr)  # not a worker that reports ready, then fails every job
        return 2
    cmd = worker_command(queues, concurrency)
    os.execv(cmd[0], cmd)
    return 0  # not reached


def _studio_server(config, supervisor: WorkerSupervisor | None):
    """uvicorn's server, which also tells the worker's supervisor at the first SIGINT/SIGTERM that
    the studio is stopping: a worker the same signal ended (systemd and docker signal every
    process of the service) must not be started again during the graceful shutdown."""
    import uvicorn

    class StudioServer(uvicorn.Server):
        def handle_exit(self, sig, frame):
            if supervisor is not None:
                supervisor.stop_restarting()
            super().handle_exit(sig, frame)

    return StudioServer(config)


def serve(host: str | None = None, port: int | None = None, with_worker: bool = True,
          open_queues: str = EVERY_QUEUE) -> int:
    """Migrate, start the embedded worker, and serve the web app until interrupted."""
    from core.startup import check_database

    if (problem := check_database(get_settings())) is not None:
        print(f"error: {problem}", file=sys.stderr)  # one line, not the migrations' traceback
        return 2
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
        # (toy) training run holds the other slot. Started again whenever it ends (supervisor).
        worker = WorkerSupervisor(worker_command(open_queues, 2), queue_names(open_queues))
        worker.start()
    shown_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"AV-LoRA Studio: http://{shown_host}:{port}/  (data in {settings.data_dir})", flush=True)
    # uvicorn re-raises SIGTERM after its graceful shutdown, which would skip the clean-up
    # below and leave the worker running: turn SIGTERM into a normal exit instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # a bounded graceful shutdown: open event streams (live logs) must not hold it forever
        config = uvicorn.Config("app.main:create_app", factory=True, host=host, port=port, log_level="info",
                                timeout_graceful_shutdown=5)
        _studio_server(config, worker).run()
    finally:
        if worker is not None:
            worker.stop(timeout_s=10)  # a warm shutdown; then it is killed
    return 0
