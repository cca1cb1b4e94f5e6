"""What ``avlora serve`` and ``avlora worker`` check before they start.

A database that cannot be reached must stop both at once with one line that names it (password
hidden) and says what to do: otherwise the server dies in its migrations with a long traceback,
and a worker reports ready and then fails every job it takes.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from core.config import Settings

CONNECT_TIMEOUT_S = 5
SET_URL = "set AVLORA_DATABASE_URL"
EXAMPLE_URL = "postgresql+psycopg://user:password@host:5432/avlora"


def check_database(settings: Settings) -> str | None:
    """Why the studio's database cannot be used, in one line (None when it can).

    SQLite: its folder must exist or be creatable (the file itself is created by the migrations).
    A server database: one connection within :data:`CONNECT_TIMEOUT_S` seconds.
    """
    raw = settings.sqlalchemy_url
    try:
        url = make_url(raw)
    except ArgumentError:
        return f"AVLORA_DATABASE_URL {_hide_password(raw)!r} is not a database URL: write it as {EXAMPLE_URL}"
    if url.get_backend_name() == "sqlite":
        return _check_sqlite(url)
    return _check_server(url)


def shown_url(url: URL) -> str:
    """The URL as set, with its password as ``***``."""
    return url.render_as_string(hide_password=True)


def _hide_password(raw: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", raw)


def _check_sqlite(url: URL) -> str | None:
    if not url.database or url.database == ":memory:":
        return None
    folder = Path(url.database).expanduser().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return (f"cannot create the folder {folder} of the SQLite database {shown_url(url)} "
                f"({exc.strerror or exc}): set AVLORA_DATA_DIR to a writable folder, or {SET_URL}")
    return None


def _check_server(url: URL) -> str | None:
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if url.get_backend_name() == "postgresql" else {}
    try:
        engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    except (ModuleNotFoundError, NoSuchModuleError) as exc:
        return f"no database driver for {shown_url(url)} ({exc}): write it as {EXAMPLE_URL}"
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return _refusal(url, exc)
    finally:
        engine.dispose()
    return None


def _refusal(url: URL, exc: SQLAlchemyError) -> str:
    """The driver's error as a reason and what to do about it."""
    detail = " ".join(str(getattr(exc, "orig", None) or exc).split())
    if url.password:
        detail = detail.replace(str(url.password), "***")
    lowered = detail.lower()
    shown = shown_url(url)
    if "does not exist" in lowered and "database" in lowered:
        return (f"the database {url.database!r} does not exist on {shown}: create it "
                f"(createdb {url.database}) or {SET_URL}")
    if "password authentication failed" in lowered or ("role" in lowered and "does not exist" in lowered):
        return f"cannot log in to the database {shown} ({_first_clause(detail)}): check the user and password in " \
               "AVLORA_DATABASE_URL"
    if "name or service not known" in lowered or "translate host name" in lowered or "nodename" in lowered:
        return f"cannot reach the database {shown} (unknown host {url.host!r}): check the host in AVLORA_DATABASE_URL"
    if "connection refused" in lowered:
        reason = "connection refused"
    elif "timeout" in lowered or "timed out" in lowered:
        reason = f"no answer within {CONNECT_TIMEOUT_S} s"
    else:
        reason = _first_clause(detail)
    return f"cannot reach the database {shown} ({reason}): start PostgreSQL or {SET_URL}"


def _first_clause(detail: str) -> str:
    """The driver's message without its connection preamble, at most 200 characters."""
    tail = detail.rsplit("failed: ", 1)[-1] if "failed: " in detail else detail
    return tail[:200]
