"""The Celery client the web process uses: it sends tasks *by name* and never imports them
(so it never imports torch). The worker builds on the same configuration (worker/celery_app.py).

It also remembers whether this process could last reach the broker (:data:`BROKER`): a job queued
while the broker is away stays ``queued`` (the sweeper sends it once the broker is back), its JSON
says so, and the log says it once per outage rather than once per job or sweeper pass.
"""

from __future__ import annotations

import logging
import threading
import time
from functools import lru_cache

from celery import Celery
from kombu.utils.url import maybe_sanitize_url

from core.config import Settings, get_settings
from core.names import QUEUES, Queue

log = logging.getLogger(__name__)

# Task names: the only contract between web and worker besides the database rows.
TASK_RUN_JOB = "avlora.run_job"

# A broker that is away must fail a publish in seconds, not hang the request that queues a job:
# connect timeout, read timeout (a broker gone without closing the connection) and one retry.
BROKER_CONNECT_TIMEOUT_S = 3.0
BROKER_SOCKET_TIMEOUT_S = 5.0
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 0.5}


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
        "broker_connection_timeout": BROKER_CONNECT_TIMEOUT_S,
        "task_publish_retry_policy": dict(PUBLISH_RETRY_POLICY),
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
        conf["broker_transport_options"] = {
            "visibility_timeout": 7 * 24 * 3600,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
            "socket_timeout": BROKER_SOCKET_TIMEOUT_S,  # above the worker's 1 s BRPOP
        }
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


def ping_broker() -> None:
    """Connect to the broker once (no retry); raises when it cannot be reached."""
    with get_celery().connection_for_write() as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, timeout=BROKER_CONNECT_TIMEOUT_S)


def shown_broker_url(url: str | None = None) -> str:
    """The broker URL with its password hidden (for messages and logs)."""
    return maybe_sanitize_url(url or get_settings().celery_broker_url, mask="***")


class BrokerOutage:
    """Whether this process's last contact with the broker failed, and since when.

    :meth:`failed` and :meth:`reached` are called at every contact; only the change is logged:
    one WARNING when an outage starts, one INFO when it ends.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.since: float | None = None  # time.monotonic() of the first failure
        self.url = ""  # the broker that failed (another URL in the settings starts afresh)

    @property
    def down(self) -> bool:
        return self.since is not None and self.url == shown_broker_url()

    def failed(self, exc: BaseException) -> None:
        """A contact failed: log the start of an outage (once)."""
        with self._lock:
            if self.down:
                return
            self.since, self.url = time.monotonic(), shown_broker_url()
        log.warning("the broker %s is unreachable (%s): jobs stay queued and are sent when it returns",
                    self.url, _one_line(exc))

    def reached(self) -> None:
        """A contact succeeded: log the end of an outage (once)."""
        with self._lock:
            if self.since is None:
                return
            down_s, self.since = time.monotonic() - self.since, None
        log.info("the broker %s is reachable again after %.0f s: sending the jobs queued meanwhile",
                 shown_broker_url(), down_s)

    def job_warning(self) -> str | None:
        """What a job queued during the outage says (None while the broker is reachable)."""
        if not self.down:
            return None
        return (f"the broker ({self.url}) is unreachable: the job is queued and will be "
                "sent when it returns")


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


BROKER = BrokerOutage()
