"""Login and logout pages (only meaningful when AVLORA_PASSWORD is set)."""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from app.security import access_policy, is_signed_in, safe_next, sign_in, sign_out
from app.templating import templates

router = APIRouter(include_in_schema=False)


def _login_page(request: Request, next_url: str, error: str | None, status: int,
                headers: dict | None = None) -> Response:
    return templates.TemplateResponse(
        request, "login.html", {"next": next_url, "login_error": error}, status_code=status, headers=headers)


@router.get("/login")
def show_login(request: Request, next: str = "/") -> Response:
    """The password form; straight on to ``next`` when no password is needed or already signed in."""
    next_url = safe_next(next)
    policy = access_policy(request)
    if not policy.password_required or is_signed_in(request):
        return RedirectResponse(next_url, status_code=303)
    return _login_page(request, next_url, None, 200)


@router.post("/login")
async def submit_login(request: Request) -> Response:
    """Check the password (argon2), sign the session in and go to ``next``."""
    form = await request.form()
    next_url = safe_next(str(form.get("next") or "/"))
    policy = access_policy(request)
    if not policy.password_required:
        return RedirectResponse(next_url, status_code=303)
    client = request.client.host if request.client else "unknown"
    wait = policy.throttle.retry_after(client)
    if wait > 0:
        seconds = math.ceil(wait)
        return _login_page(request, next_url, f"Too many wrong passwords. Wait {seconds} s and try again.",
                           429, {"Retry-After": str(seconds)})
    password = str(form.get("password") or "")
    if not await run_in_threadpool(policy.verify_password, password):
        policy.throttle.failed(client)
        return _login_page(request, next_url, "Wrong password.", 401)
    policy.throttle.succeeded(client)
    sign_in(request)
    return RedirectResponse(next_url, status_code=303)


@router.post("/logout")
def logout(request: Request) -> Response:
    """Forget the session and show the login page."""
    sign_out(request)
    return RedirectResponse("/login", status_code=303)
