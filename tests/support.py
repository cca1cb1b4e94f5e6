"""Process and service helpers shared by integration and browser tests."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("AVLORA_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_BASE = os.environ.get("AVLORA_TEST_REDIS", "redis://127.0.0.1:6379")


def reset_app_caches() -> None:
    """Forget cached settings, engines and the Celery client (after changing AVLORA_ env vars)."""
    from core.config import get_settings
    from core.db import get_engine, get_sessionmaker
    from core.queue import get_celery

    if get_sessionmaker.cache_info().currsize:
        get_engine().dispose()
    for cached in (get_settings, get_engine, get_sessionmaker, get_celery):
        cached.cache_clear()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_database():
    """A fresh, empty Postgres database; yields its SQLAlchemy URL and drops it afterwards."""
    import psycopg

    name = f"avlora_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def redis_broker():
    """A Redis database index of its own (flushed before and after); yields the broker URL."""
    import redis

    # pytest-xdist's workers (gw0, gw1, ...) each get an index of their own; a plain run takes one by pid
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = 1 + (int(worker[2:]) % 14 if worker.startswith("gw") else os.getpid() % 14)
    url = f"{REDIS_BASE}/{index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


def _wait_for(predicate, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        if predicate():
            return
        time.sleep(0.2)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout}s:\n{tail}")


@contextmanager
def celery_worker(env: dict[str, str], log_path: Path, queues: str = "cpu,gpu", concurrency: int = 1):
    """A real Celery worker process (the production command) with ``env``; stopped afterwards."""
    from avlora.serve import worker_command

    cmd = worker_command(queues, concurrency)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_for(lambda: b"ready." in log_path.read_bytes(), 90, "celery worker", proc, log_path)
        yield proc
    finally:
        stop_process(proc)


@contextmanager
def web_server(env: dict[str, str], log_path: Path, *, with_worker: bool = False):
    """``avlora serve`` in a subprocess on a free port; yields its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "avlora.cli", "serve", "--port", str(port)]
    if not with_worker:
        cmd.append("--no-worker")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        _wait_for(up, 60, "web server", proc, log_path)
        yield url
    finally:
        stop_process(proc)


# What a worker's log must not show (worker/quiet.py): warnings nobody running the studio can act
# on, and progress bars that Celery logs redraw by redraw.
WORKER_LOG_NOISE = {
    "the root warning": re.compile(r"superuser privileges|--uid option"),
    "torchao's optional kernels": re.compile(r"torchao", re.IGNORECASE),
    "PyTorch's pytree notes": re.compile(r"is an Enum subclass"),
    "a progress bar": re.compile(r"\d+%\|.*\||it/s\]|s/it\]"),
}


def worker_log_noise(text: str) -> dict[str, str]:
    """The noise found in a worker's log: what it is -> the first line showing it."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        for what, pattern in WORKER_LOG_NOISE.items():
            if pattern.search(line):
                found.setdefault(what, line)
    return found


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Stop a process group started with start_new_session=True (TERM, then KILL)."""
    import signal

    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def celery_processes_of(data_dir: str) -> list[int]:
    """Pids of live Celery processes started with ``AVLORA_DATA_DIR=data_dir`` (from /proc)."""
    marker = f"AVLORA_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "environ").read_bytes().split(b"\0") and b"celery" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found
