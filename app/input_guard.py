"""Input the database cannot store is refused at the door, for every route, before the route runs.

A pure ASGI middleware (inside the access control, so a stranger still meets the login first) that
applies ``app.input_rules`` to the address, the query string and the body: a JSON or url-encoded
body is read in full (the route reads it in full anyway) and handed on unchanged; a multipart body
(uploads of many GiB) is followed as it streams past, its part headers and text parts checked, so a
bad field or file name stops the upload before its part reaches the route, whose partial files are
removed as on any failed upload. The answer is the studio's error (``app.errors.error_response``):
JSON, or the error page for a browser. Nothing is written: the route never sees the refused input.
"""

from __future__ import annotations

import json
import re
from email.message import Message as HeaderMessage
from urllib.parse import unquote_to_bytes

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import error_response
from app.input_rules import check_form, check_json, check_path, check_query, check_text_bytes
from core.errors import ApiError

BUFFER_LIMIT = 16 * 1024 * 1024  # a bigger JSON or form body is handed on unchecked (the last-resort handler remains)
BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")
_HEADER_LIMIT = 16 * 1024  # part headers longer than this are left to the route's parser
_PARAM = re.compile(rb';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _body_kind(headers: Headers) -> tuple[str, bytes | None]:
    """``("json" | "form" | "multipart" | "", boundary)`` from the content type, as FastAPI reads it."""
    value = headers.get("content-type")
    if value is None:
        return "json", None  # FastAPI parses a body without a content type as JSON
    message = HeaderMessage()
    message["content-type"] = value
    subtype = message.get_content_subtype()
    if message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json")):
        return "json", None
    if message.get_content_type() == "application/x-www-form-urlencoded":
        return "form", None
    boundary = message.get_param("boundary")
    if message.get_content_type() == "multipart/form-data" and isinstance(boundary, str) and boundary:
        return "multipart", boundary.encode("latin-1", "replace")
    return "", None


async def _read_body(receive: Receive) -> tuple[bytes | None, Receive]:
    """The whole body (``None`` past :data:`BUFFER_LIMIT`) and a ``receive`` that hands it on unchanged."""
    messages: list[Message] = []
    size, more = 0, True
    while more and size <= BUFFER_LIMIT:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            break
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    complete = not more and size <= BUFFER_LIMIT and messages[-1]["type"] == "http.request"
    body = b"".join(m.get("body", b"") for m in messages) if complete else None

    async def replay() -> Message:
        return messages.pop(0) if messages else await receive()

    return body, replay


def _check_buffered(kind: str, body: bytes) -> None:
    """Check a JSON or url-encoded body; one that does not parse is left for the route to refuse."""
    if kind == "form":
        check_form(body)
        return
    try:
        check_json(json.loads(body))
    except (ValueError, RecursionError):
        return  # not JSON (or nested past Python's limit): the route refuses it in its own words


def _field_of(block: bytes) -> tuple[str, bool]:
    """Check one part's headers; returns its field name and whether it is a file part.

    No control character may appear in a header (a field or file name with one is refused, the
    ``filename*=utf-8''...`` form decoded first)."""
    params = {}
    for line in block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-disposition":
            params = {k.lower(): v.strip() for k, v in _PARAM.findall(value)}
    field = _unquote(params.get(b"name", b"")).decode("utf-8", "replace")
    for key, what in ((b"name", "field name"), (b"filename", "file name"), (b"filename*", "file name")):
        raw = _unquote(params.get(key, b""))
        if key.endswith(b"*"):
            raw = unquote_to_bytes(raw.split(b"'", 2)[-1])
        check_text_bytes(field or "upload", raw, multiline=False, what=what)
    check_text_bytes(field or "upload", block.replace(b"\r\n", b"").replace(b"\t", b" "), multiline=False,
                     what="part header")
    return field, b"filename" in params or b"filename*" in params


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == value[-1:] == b'"':
        return re.sub(rb"\\(.)", rb"\1", value[1:-1])
    return value


class MultipartScanner:
    """Follows a multipart body chunk by chunk and raises at the first bad part header or text part.

    A file's bytes are only searched for the next boundary; what is kept between chunks is at most
    one delimiter's length (or one header block)."""

    def __init__(self, boundary: bytes):
        self._delimiter = b"\r\n--" + boundary
        self._pending = b"\r\n"  # the body opens with the first delimiter, less its CRLF
        self._in_headers = False
        self._text_field: str | None = None  # the field of the text part being read
        self._finished = False

    def feed(self, chunk: bytes) -> None:
        """Check the next piece of the body."""
        if self._finished:
            return
        self._pending += chunk
        while not self._finished and (self._headers_step() if self._in_headers else self._data_step()):
            pass

    def _headers_step(self) -> bool:
        if self._pending.startswith(b"--"):  # the closing delimiter: the rest is the epilogue
            self._finished = True
            return False
        end = self._pending.find(b"\r\n\r\n")
        if end < 0:
            self._finished = len(self._pending) > _HEADER_LIMIT
            return False
        field, is_file = _field_of(self._pending[:end])
        self._text_field = None if is_file else field
        self._pending, self._in_headers = self._pending[end + 4:], False
        return True

    def _data_step(self) -> bool:
        at = self._pending.find(self._delimiter)
        cut = at if at >= 0 else max(0, len(self._pending) - len(self._delimiter) + 1)
        if self._text_field is not None:
            check_text_bytes(self._text_field, self._pending[:cut])
        if at < 0:
            self._pending = self._pending[cut:]
            return False
        self._pending, self._in_headers = self._pending[at + len(self._delimiter):], True
        return True


class InputGuardMiddleware:
    """Refuses what ``app.input_rules`` refuses, answering as the studio answers errors."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        kind, boundary = _body_kind(Headers(scope=scope)) if scope["method"] in BODY_METHODS else ("", None)
        try:
            check_path(scope["path"])
            check_query(scope.get("query_string", b""))
            if kind in ("json", "form"):
                body, receive = await _read_body(receive)
                if body:
                    _check_buffered(kind, body)
        except ApiError as exc:
            await _answer(scope, receive, send, exc)
            return
        if kind == "multipart":
            await self._streamed(scope, receive, send, MultipartScanner(boundary))
            return
        await self.app(scope, receive, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, scanner: MultipartScanner) -> None:
        """Run the route with a ``receive`` that checks each chunk before handing it on.

        A refusal is raised inside the route (which removes its partial files as for any failed
        upload); whatever the route then answers is dropped and the refusal is answered instead."""
        refused: list[ApiError] = []
        started = False

        async def checked_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not refused:
                try:
                    scanner.feed(message.get("body", b""))
                except ApiError as exc:
                    refused.append(exc)
                    raise
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused and not started:
                return  # the route's answer to the refusal it met: ours goes out instead
            started = True
            await send(message)

        try:
            await self.app(scope, checked_receive, guarded_send)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await _answer(scope, receive, send, refused[0])


async def _answer(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
    response = error_response(Request(scope, receive), exc.status, exc.body())
    await response(scope, receive, send)
