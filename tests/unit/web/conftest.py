"""Fixtures for the studio's web tests: an app on a migrated SQLite studio, generated media."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.media_factory import MediaFactory


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> MediaFactory:
    """Generated clips, made once per test session."""
    return MediaFactory(tmp_path_factory.mktemp("media"))


@pytest.fixture
def api(migrated_env):
    """A TestClient that authenticates as a script (bearer token), with the small helpers tests use."""
    from app.main import create_app
    from app.security import api_token

    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {api_token()}"
    return client


@pytest.fixture
def browser_client(migrated_env):
    """A TestClient that behaves like a browser session (cookie + CSRF token from the page)."""
    from app.main import create_app

    return TestClient(create_app())


# ``migrated_env`` (tests/conftest.py) copies a SQLite file migrated once per session into the data directory.
