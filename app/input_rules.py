"""What a request may carry, whatever the route: text and numbers the database can store.

Postgres refuses NUL in text and INTEGER ids past 2**31 - 1, SQLite ints past 2**63 - 1, and neither
can encode a lone surrogate; other C0 control characters are never meant (a pasted terminal escape, a
mangled file name) and break captions and file names further on. Each check raises an
:class:`~core.errors.ApiError` that names the field, so the answer is a 422 that says what to fix
(a path id out of range is a 404: nothing can have it). ``app.input_guard`` applies them to every
request before a route runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl

from core.db import ID_MAX, ID_MIN, id_in_range, unstorable_character
from core.errors import ApiError, InvalidInput

# C0 control bytes, and the same less tab, LF and CR (multi-line text in a multipart part)
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f]")
_CONTROL_BYTES_IN_LINES = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_LONGEST_INTEGER = 40  # digits; longer is out of every range (and int() of thousands of digits is refused)


def shown(text: str) -> str:
    """``text`` with its control characters escaped, short enough to quote in a message."""
    escaped = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return escaped if len(escaped) <= 80 else escaped[:77] + "..."


def refuse_text(field: str, character: str, what: str = "") -> InvalidInput:
    """The 422 for an unstorable ``character`` (described) in ``field`` (``what``: which part, e.g. its file name)."""
    where = f"The {what} in '{shown(field)}'" if what else f"'{shown(field)}'"
    return InvalidInput("invalid_text", f"{where} contains {character}, which the studio cannot store: remove it "
                        "and send it again.", {"field": field})


def check_text(field: str, value: str, *, multiline: bool = True) -> None:
    """Refuse what :func:`core.db.unstorable_character` finds (tab, LF and CR are fine in ``multiline`` text)."""
    if character := unstorable_character(value, multiline=multiline):
        raise refuse_text(field, character)


def check_text_bytes(field: str, value: bytes, *, multiline: bool = True, what: str = "") -> None:
    """:func:`check_text` of text still in bytes (a multipart header or text part, in pieces)."""
    if found := (_CONTROL_BYTES_IN_LINES if multiline else _CONTROL_BYTES).search(value):
        raise refuse_text(field, unstorable_character(chr(found.group()[0]), multiline=False), what)


def is_id_field(field: str) -> bool:
    """True for a field holding ids: ``id``, ``*_id`` or ``*_ids`` (list items count as their list)."""
    name = next((part for part in reversed(field.split(".")) if not part.isdigit()), "")
    return name == "id" or name.endswith(("_id", "_ids"))


def check_number(field: str, value: int) -> None:
    """Refuse an integer no column could hold: ids past the id range, anything else past 64 bits."""
    is_id = is_id_field(field)
    low, high = (ID_MIN, ID_MAX) if is_id else (INT64_MIN, INT64_MAX)
    if not low <= value <= high:
        number = str(value) if abs(value) < 10**_LONGEST_INTEGER else "a number that long"
        rule = f"no id is that large (they go up to {high})" if is_id else f"numbers go from {low} to {high}"
        raise InvalidInput("number_out_of_range", f"'{shown(field)}' is {number}: {rule}. Check the value.",
                           {"field": field, "min": low, "max": high})


def integer_literal(text: str) -> int | None:
    """``text`` as an int when it is one (huge ones become a value past every range), else ``None``."""
    if not _INTEGER.fullmatch(text):
        return None
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > _LONGEST_INTEGER:
        return -(10**_LONGEST_INTEGER) if text.startswith("-") else 10**_LONGEST_INTEGER
    return int(text)


def check_json(value: object, field: str = "") -> None:
    """Walk a parsed JSON body: every key and string (see :func:`check_text`), every integer."""
    if isinstance(value, dict):
        for key, item in value.items():
            check_text(f"{field}.{key}" if field else key, key, multiline=False)
            check_json(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_json(item, f"{field}.{index}" if field else str(index))
    elif isinstance(value, str):
        check_text(field or "body", value)
    elif isinstance(value, int) and not isinstance(value, bool):
        check_number(field or "body", value)


def check_pairs(pairs: Iterable[tuple[str, str]], *, multiline: bool) -> None:
    """Query parameters or form fields: names and values as text, id fields as ids."""
    for key, value in pairs:
        check_text(key, key, multiline=False)
        check_text(key, value, multiline=multiline)
        if is_id_field(key) and (number := integer_literal(value.strip())) is not None:
            check_number(key, number)


def check_query(query_string: bytes) -> None:
    """The query string (read as Starlette reads it): single-line text; ids in range."""
    check_pairs(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True), multiline=False)


def check_form(body: bytes) -> None:
    """A url-encoded form body: multi-line text allowed (captions); ids in range."""
    check_pairs(parse_qsl(body.decode("latin-1"), keep_blank_values=True), multiline=True)


def check_path(path: str) -> None:
    """No control character in the address; a whole-number segment (an id, a step) in the id range.

    Such a number is out of every table, so the answer is 404 whatever the route (its lookup would
    make Postgres fail instead)."""
    check_text("path", path, multiline=False)
    for segment in path.split("/"):
        number = integer_literal(segment)
        if number is not None and not id_in_range(number):
            raise ApiError(404, "not_found", f"There is nothing at this address: {shown(segment)} is not an id "
                           f"the studio gives out (they go up to {ID_MAX}). Check the link.", {"field": "path"})
