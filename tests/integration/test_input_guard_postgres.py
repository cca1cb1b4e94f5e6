"""The input-guard and summary-count tests of tests/unit/app that touch the database, run again on
the real Postgres: its INTEGER ids end at 2**31 - 1 and its text refuses NUL, where SQLite took both
(or failed later)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.unit.app.test_dataset_counts import test_identical_uploads_are_each_counted_in_the_advice  # noqa: F401
from tests.unit.app.test_input_guard import (  # noqa: F401  (collected here, with this module's ``api``)
    test_a_caption_with_a_control_character_is_refused_but_lines_and_tabs_are_kept,
    test_a_dataset_name_with_a_control_character_is_refused_and_nothing_is_written,
    test_a_number_that_reaches_the_database_out_of_range_is_a_json_422,
    test_an_imported_caption_with_a_control_character_makes_no_dataset_and_keeps_no_file,
    test_an_uploaded_file_name_with_a_control_character_stops_the_upload_and_keeps_nothing,
    test_every_route_answers_an_id_past_the_database_range_with_a_json_404,
    test_ids_past_the_range_in_a_query_or_a_body_are_refused_by_name,
)
from tests.unit.web.conftest import media  # noqa: F401  (the generated clips, a fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def migrated_env(production_env):
    """The studio's environment, here on a fresh migrated Postgres database (and Redis)."""
    return production_env


@pytest.fixture
def api(migrated_env):
    """A TestClient on the Postgres studio that authenticates as a script (bearer token)."""
    from app.main import create_app
    from app.security import api_token
    from core.db import get_engine

    assert get_engine().dialect.name == "postgresql"
    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {api_token()}"
    return client
