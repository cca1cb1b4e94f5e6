"""The Celery worker application: the web's configuration plus the task definitions."""

from __future__ import annotations

from core.queue import get_celery

celery_app = get_celery()
celery_app.conf.imports = ("worker.tasks",)
import worker.tasks  # noqa: E402,F401  (registers the tasks)
