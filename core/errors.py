"""Errors the studio raises: a status, a stable code and a message that tells a person what to do.

Types only: the web renders them (``app.errors``) as ``{"error": {"code", "message"}}`` with the
status, or as a page; the workers record their message on the job.
"""

from __future__ import annotations


class ApiError(Exception):
    """An error with an HTTP status, a stable ``code`` and a person-readable ``message``."""

    def __init__(self, status: int, code: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.detail = status, code, message, detail

    def body(self) -> dict:
        error = {"code": self.code, "message": self.message}
        if self.detail:
            error["detail"] = self.detail
        return {"error": error}


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


MIB = 1024 * 1024


class DiskFull(ApiError):
    """The disk holding DATA_DIR has no room for a write (507 Insufficient Storage).

    Raised by :mod:`core.disk` before a large write that would not fit, or after a write that
    failed on a full disk, whatever the writing library raised; the partial file is gone by then.
    """

    def __init__(self, free_bytes: int, need_bytes: int | None = None):
        detail = {"free_bytes": free_bytes} | ({"need_bytes": need_bytes} if need_bytes is not None else {})
        super().__init__(507, "disk_full",
                         f"the disk holding DATA_DIR is full: {free_bytes // MIB} MiB free", detail)
        self.free_bytes, self.need_bytes = free_bytes, need_bytes
