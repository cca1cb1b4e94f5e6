"""API errors as ``{"error": {"code", "message"}}``, with a message that tells a person what to do.

A browser opening a page or sending a page's form (outside ``/api/``, accepting HTML, not an htmx
request) gets the same message as a page in the studio's layout instead of raw JSON.

Input the database cannot store is refused before a route runs (``app.input_guard``); what still
reaches the database is answered by :func:`unstorable_value_handler` with a 422, never a 500."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.templating import templates
from core.errors import ApiError


def _wants_page(request: Request) -> bool:
    """True for a browser navigating to a page or posting its form (not the API, not htmx, not a media element)."""
    return (request.method in ("GET", "POST") and not request.url.path.startswith("/api/")
            and "hx-request" not in request.headers and "text/html" in request.headers.get("accept", ""))


def error_response(request: Request, status: int, body: dict, headers: dict | None = None) -> Response:
    """``body`` (``{"error": {...}}``) as JSON, or as an HTML page for a browser opening a page."""
    if _wants_page(request):
        return templates.TemplateResponse(request, "error.html", {"status": status, "error": body["error"]},
                                          status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error_handler(request: Request, exc: ApiError) -> Response:
    return error_response(request, exc.status, exc.body())


async def http_error_handler(request: Request, exc: StarletteHTTPException) -> Response:
    code = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
        exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    return error_response(request, exc.status_code, {"error": {"code": code, "message": message}},
                          headers=getattr(exc, "headers", None))


async def validation_error_handler(request: Request, exc: RequestValidationError) -> Response:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return error_response(request, 422,
                          {"error": {"code": "invalid_request", "message": "Please fix: " + "; ".join(parts)}})


# What the database drivers raise for a value they cannot take, besides SQLAlchemy's DataError
# (Postgres: integer out of range, NUL in text, text too long for its column).
_DRIVER_REFUSALS = {OverflowError: "too large to convert to SQLite INTEGER", UnicodeEncodeError: "surrogates not allowed"}


def _unstorable_reason(exc: Exception) -> str | None:
    """The database's first line about ``exc`` when it is a refused value, else ``None`` (a bug: 500)."""
    if isinstance(exc, DataError):
        return str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else "value out of range"
    marker = next((m for kind, m in _DRIVER_REFUSALS.items() if isinstance(exc, kind)), None)
    return marker if marker and marker in str(exc) else None


async def unstorable_value_handler(request: Request, exc: Exception) -> Response:
    """Last resort: a number or text the database refused is the request's fault (422), not a crash.

    The input guard refuses such values before a route runs; this catches what it cannot know (a
    number past a column's range deep in a body, a caption too long for Postgres). The session is
    rolled back when the request ends, so nothing of the request is written."""
    reason = _unstorable_reason(exc)
    if reason is None:
        raise exc
    return error_response(request, 422, {"error": {
        "code": "unstorable_value",
        "message": f"A value in the request cannot be stored ({reason}): check the numbers and text you sent."}})


UNSTORABLE_VALUE_ERRORS = (DataError, *_DRIVER_REFUSALS)
