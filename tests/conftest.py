"""Fixtures for every test: an isolated data directory and settings per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support import postgres_database, redis_broker, reset_app_caches


@pytest.fixture
def studio_env(tmp_path, monkeypatch):
    """Embedded-default settings (SQLite + file broker) in a fresh data directory.

    Returns the environment dict so subprocesses (worker, server) can share it.
    """
    env = {
        "AVLORA_DATA_DIR": str(tmp_path / "data"),
        "AVLORA_MODEL_PRESET": "toy",
        "AVLORA_HEARTBEAT_INTERVAL_S": "1",
    }
    for key in ("AVLORA_DATABASE_URL", "AVLORA_BROKER_URL", "AVLORA_PASSWORD", "AVLORA_API_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_app_caches()
    yield env
    reset_app_caches()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite database migrated to head, built once per test session (copied by ``migrated_env``)."""
    from core.migrate import upgrade

    path = tmp_path_factory.mktemp("migrated") / "studio.sqlite3"
    upgrade(f"sqlite:///{path}")  # the engine is disposed after: no -wal/-shm file is left beside it
    return path


@pytest.fixture
def migrated_env(studio_env, migrated_sqlite):
    """``studio_env`` with the SQLite schema migrated to head: a copy of the session's migrated file."""
    from sqlalchemy.engine import make_url

    from core.config import get_settings

    target = Path(make_url(get_settings().sqlalchemy_url).database)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(migrated_sqlite, target)
    return studio_env


@pytest.fixture
def production_env(tmp_path, monkeypatch):
    """Real Postgres (a fresh database) and Redis (a database index of its own), migrated."""
    with postgres_database() as pg_url, redis_broker() as broker_url:
        env = {
            "AVLORA_DATA_DIR": str(tmp_path / "data"),
            "AVLORA_DATABASE_URL": pg_url,
            "AVLORA_BROKER_URL": broker_url,
            "AVLORA_MODEL_PRESET": "toy",
            "AVLORA_HEARTBEAT_INTERVAL_S": "1",
        }
        for key in ("AVLORA_PASSWORD", "AVLORA_API_TOKEN"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        reset_app_caches()
        from core.migrate import upgrade

        upgrade()
        yield env
        reset_app_caches()
