"""The Celery worker application: the web's configuration plus the task definitions, and the
worker's announcement to the studio (``worker.announce``: its row in ``workers``)."""

from __future__ import annotations

import worker.quiet  # first: quiets what is noise in the log, for the whole worker
from core.queue import get_celery

celery_app = get_celery()
celery_app.conf.imports = ("worker.tasks",)
import worker.announce  # noqa: E402  (connects the worker_ready / shutdown signals)
import worker.tasks  # noqa: E402,F401  (registers the tasks)
