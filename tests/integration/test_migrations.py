"""Migrations run on SQLite and on a real Postgres, and produce the schema the models describe."""

import pytest
from sqlalchemy import create_engine, inspect

from core import migrate
from core.models import Base
from tests.support import postgres_database


def _assert_schema_matches_models(url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == [], f"models and migrations disagree: {diff}"


def _round_trip(url: str) -> None:
    migrate.upgrade(url)
    _assert_schema_matches_models(url)
    migrate.downgrade(url, "base")
    engine = create_engine(url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    migrate.upgrade(url)
    _assert_schema_matches_models(url)


def test_migrations_on_sqlite(tmp_path):
    _round_trip(f"sqlite:///{tmp_path / 'm.sqlite3'}")


@pytest.mark.integration
def test_migrations_on_postgres():
    with postgres_database() as url:
        _round_trip(url)
