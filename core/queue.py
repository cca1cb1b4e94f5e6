"""The Celery client the web process uses: it sends tasks *by name* and never imports them
(so it never imports torch). The worker builds on the same configuration (worker/celery_app.py).
"""

from __future__ import annotations

from functools import lru_cache

from celery import Celery

from core.config import Settings, get_settings
from core.names import QUEUES, Queue

# Task names: the only contract between web and worker besides the database rows.
TASK_RUN_JOB = "avlora.run_job"


def configure_celery(app: Celery, settings: Settings) -> Celery:
    """Apply the studio's broker settings to ``app``."""
    conf: dict = {
        "broker_url": settings.celery_broker_url,
        "task_ignore_result": True,  # the job row is the result
        "result_backend": None,
        "task_acks_late": True,  # a task killed with its worker is redelivered ...
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # ... and a worker holds one task at a time
        "task_default_queue": Queue.cpu.value,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
    }
    if settings.uses_file_broker:
        folder = settings.file_broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            "control_folder": str(folder / "control"),  # broadcast (cancel/ping); default is the cwd
            "store_processed": False,
        }
    else:
        # Redis redelivers an unacknowledged task after visibility_timeout; a training run can
        # last days, so make it longer than any job. The job row guards against a double run.
        conf["broker_transport_options"] = {"visibility_timeout": 7 * 24 * 3600}
    app.conf.update(conf)
    return app


@lru_cache
def get_celery() -> Celery:
    return configure_celery(Celery("avlora"), get_settings())


def send_job(job_id: int, queue: str) -> str:
    """Ask a worker on ``queue`` to run job ``job_id``; returns the Celery task id.

    Call only after the job row is committed: the worker re-reads it.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    result = get_celery().send_task(TASK_RUN_JOB, args=[job_id], queue=queue)
    return result.id
