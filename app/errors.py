"""API errors as ``{"error": {"code", "message"}}``, with a message that tells a person what to do.

A browser opening a page (a GET outside ``/api/`` that accepts HTML, not an htmx request) gets the
same message as a page in the studio's layout instead of raw JSON."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.templating import templates
from core.errors import ApiError


def _wants_page(request: Request) -> bool:
    """True for a browser navigating to a page (not the API, not htmx, not a media element)."""
    return (request.method == "GET" and not request.url.path.startswith("/api/")
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
