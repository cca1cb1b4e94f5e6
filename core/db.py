"""Database engine and sessions (SQLAlchemy 2). SQLite embedded, Postgres in production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings
from core.errors import NotFound

T = TypeVar("T")

# Every id (and checkpoint step) is an INTEGER column: 64-bit in SQLite, 32-bit in Postgres. The
# studio holds ids to the smaller range on both, so an id answers the same whichever database runs.
ID_MIN, ID_MAX = -(2**31), 2**31 - 1


def id_in_range(value: int) -> bool:
    """True when ``value`` fits the id columns of every database the studio runs on."""
    return ID_MIN <= value <= ID_MAX


# Text the studio does not store: C0 control characters (Postgres refuses NUL; the others are never
# meant: a pasted terminal escape, a mangled name), less tab, LF and CR in multi-line text (captions),
# and lone surrogates (no UTF-8 can encode them, so neither database can take them).
_UNSTORABLE = re.compile(r"[\x00-\x1f\ud800-\udfff]")
_UNSTORABLE_IN_LINES = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def unstorable_character(text: str, *, multiline: bool = True) -> str | None:
    """The first character of ``text`` the studio does not store, described for a person, or ``None``."""
    found = (_UNSTORABLE_IN_LINES if multiline else _UNSTORABLE).search(text)
    if found is None:
        return None
    char = found.group()
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X}, half of a UTF-16 pair)"
    return "a control character (" + ("NUL" if char == "\x00" else f"U+{ord(char):04X}") + ")"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL and foreign keys so web and worker can share it."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.sqlalchemy_url)


@lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error (for tasks and scripts)."""
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


def get_or_404(session: Session, model: type[T], ident: object, what: str) -> T:
    """The ``model`` row with primary key ``ident``, or :class:`core.errors.NotFound` naming ``what``.

    An id outside :data:`ID_MIN`..:data:`ID_MAX` is not asked of the database (Postgres would refuse
    to compare it with an INTEGER column): no row can have it, so it is simply not found."""
    if isinstance(ident, int) and not id_in_range(ident):
        raise NotFound(what, ident)
    row = session.get(model, ident)
    if row is None:
        raise NotFound(what, ident)
    return row
