"""Errors the services raise: a stable code and a message that tells a person what to do.

They are :class:`app.errors.ApiError` subclasses, so the JSON API renders them as
``{"error": {"code", "message"}}`` with the right status, and pages show ``message``.
"""

from __future__ import annotations

from app.errors import ApiError


class InvalidInput(ApiError):
    """The request is well-formed but its content breaks a rule (422)."""

    def __init__(self, code: str, message: str, detail: dict | None = None):
        super().__init__(422, code, message, detail)


class NotFound(ApiError):
    """The dataset, clip or job does not exist (404)."""

    def __init__(self, what: str, ident: object):
        super().__init__(404, f"{what}_not_found", f"There is no {what} #{ident}: check the link or id.")


class Conflict(ApiError):
    """The action does not fit the current state (409)."""

    def __init__(self, code: str, message: str):
        super().__init__(409, code, message)
