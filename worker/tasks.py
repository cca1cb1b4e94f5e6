"""Celery tasks: thin. Each receives only a job id and hands the row to the job runner."""

from __future__ import annotations

from core.config import get_settings
from core.queue import TASK_RUN_JOB, get_celery
from worker.handlers import HANDLERS
from worker.jobs import run_job

celery_app = get_celery()


@celery_app.task(name=TASK_RUN_JOB)
def run_job_task(job_id: int) -> str | None:
    """Run job ``job_id`` (any kind) on whichever queue it was sent to."""
    return run_job(job_id, HANDLERS, get_settings().heartbeat_timeout_s)
