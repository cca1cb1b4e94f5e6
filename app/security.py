"""Access control: password login, signed session cookie, CSRF, bearer token for scripts.

The contract every route relies on (enforced by :class:`AccessMiddleware`, pure ASGI so upload
bodies keep streaming and disconnects still reach the route):

- A state-changing request (POST, PUT, PATCH, DELETE) carries one of
  ``X-CSRF-Token: <csrf_token(request)>`` (htmx, fetch, multipart uploads),
  ``Authorization: Bearer <api_token()>`` (scripts), or, for urlencoded HTML forms only, a
  ``csrf_token`` form field. Otherwise: 403 ``{"error": {"code": "csrf_failed", ...}}``.
  This holds with or without a password: it stops other sites posting to a localhost studio.
  Multipart bodies are never read here; they need the header.
- With ``AVLORA_PASSWORD`` set, a request that is neither signed in (session cookie) nor carries
  the bearer token gets a redirect to ``/login?next=...`` (pages) or 401
  ``{"error": {"code": "unauthorized", ...}}`` (API, htmx and other non-GET requests).
  ``/healthz``, ``/static`` and ``/login`` stay open.

The policy keeps only the argon2 hash of the password, a keyed argon2-derived marker that
signed-in sessions carry (a new password signs everyone out), and a SHA-256 digest of the API
token; the plain password lives on only in the settings object and the process environment.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type, hash_secret_raw
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.config import Settings, get_settings
from core.files import atomic_write_text

SESSION_COOKIE = "avlora_session"
SESSION_MAX_AGE_S = 14 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
OPEN_PATHS = frozenset({"/healthz", "/login", "/favicon.ico"})
OPEN_PREFIXES = ("/static/",)
MAX_FORM_BYTES = 1024 * 1024  # urlencoded forms read here for their csrf_token field

_CSRF_KEY = "csrf"
_AUTH_KEY = "auth"


# --- secrets kept in DATA_DIR ----------------------------------------------------------------

def _stored_secret(path: Path) -> str:
    """Read the secret in ``path``, creating it (random, mode 0600) on first use.

    Written to a temporary name and linked into place, so two processes starting at once agree
    on one value and nobody ever reads a half-written file.
    """
    if not path.exists():  # overwrite=False: another process that won the race keeps its value
        atomic_write_text(path, secrets.token_urlsafe(32) + "\n", mode=0o600, overwrite=False)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: delete it and restart the studio to generate a new one.")
    return value


def api_token(settings: Settings | None = None) -> str:
    """The bearer token scripts send: AVLORA_API_TOKEN, else the password, else a generated one
    stored in ``DATA_DIR/api_token`` (mode 0600)."""
    settings = settings or get_settings()
    if settings.api_token is not None and settings.api_token.get_secret_value():
        return settings.api_token.get_secret_value()
    if settings.password is not None and settings.password.get_secret_value():
        return settings.password.get_secret_value()
    return _stored_secret(settings.data_dir / "api_token")


def secret_key(settings: Settings | None = None) -> str:
    """The key that signs session cookies: AVLORA_SECRET_KEY, else generated into DATA_DIR."""
    settings = settings or get_settings()
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value()
    return _stored_secret(settings.data_dir / "secret_key")


def check_access_settings(settings: Settings) -> None:
    """Refuse settings that would leave the studio open by mistake (an empty password)."""
    if settings.password is not None and not settings.password.get_secret_value().strip():
        raise ValueError("AVLORA_PASSWORD is set but empty: set a real password, or unset it to "
                         "run on 127.0.0.1 without one.")


# --- the session and its CSRF token ----------------------------------------------------------

def csrf_token(request: Request) -> str:
    """The CSRF token of this browser session (created on first use). Templates put it in
    forms (``<input type="hidden" name="csrf_token">``) and in htmx's ``X-CSRF-Token`` header."""
    session = request.session
    token = session.get(_CSRF_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[_CSRF_KEY] = token
    return token


def is_signed_in(request: Request) -> bool:
    """Whether this request's session is signed in (always False when no password is set)."""
    return access_policy(request).session_signed_in(request.scope.get("session", {}))


def may_browse(request: Request) -> bool:
    """Whether this request may see the studio's pages: no password set, or signed in."""
    policy = access_policy(request)
    return not policy.password_required or policy.session_signed_in(request.scope.get("session", {}))


def sign_in(request: Request) -> None:
    """Mark the session signed in, with a fresh CSRF token (a pre-login token is not reused)."""
    request.session.clear()
    request.session[_AUTH_KEY] = access_policy(request).session_marker
    request.session[_CSRF_KEY] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    """Forget everything in the session."""
    request.session.clear()


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``/`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


class SessionCookie:
    """Encodes the session dict as a signed, timestamped, URL-safe cookie value (itsdangerous)."""

    def __init__(self, key: str, max_age_s: int = SESSION_MAX_AGE_S):
        self._serializer = URLSafeTimedSerializer(key, salt="avlora.session")
        self.max_age_s = max_age_s

    def load(self, raw: str | None) -> dict:
        """The session in cookie value ``raw``; empty when missing, forged or expired."""
        if not raw:
            return {}
        try:
            data = self._serializer.loads(raw, max_age=self.max_age_s)
        except BadSignature:  # also covers expired and malformed values
            return {}
        return data if isinstance(data, dict) else {}

    def dump(self, session: dict) -> str:
        return self._serializer.dumps(session)

    def header(self, session: dict, secure: bool) -> str:
        """A ``Set-Cookie`` value: HttpOnly, SameSite=Lax, Secure behind https; empty = delete."""
        flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
        if not session:
            return f"{SESSION_COOKIE}=; Max-Age=0" + flags
        return f"{SESSION_COOKIE}={self.dump(session)}; Max-Age={self.max_age_s}" + flags


# --- password and login throttling -----------------------------------------------------------

@dataclass
class LoginThrottle:
    """After ``max_failures`` wrong passwords from one client, refuse attempts for a while
    (doubling per further failure, up to ``max_lockout_s``). A right password resets it."""

    max_failures: int = 5
    lockout_s: float = 15.0
    max_lockout_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _failures: dict[str, tuple[int, float]] = field(default_factory=dict)

    def retry_after(self, client: str) -> float:
        """Seconds ``client`` must still wait before trying again (0: may try now)."""
        count, last = self._failures.get(client, (0, 0.0))
        if count < self.max_failures:
            return 0.0
        wait = min(self.lockout_s * 2 ** (count - self.max_failures), self.max_lockout_s)
        return max(0.0, last + wait - self.clock())

    def failed(self, client: str) -> None:
        count, _ = self._failures.get(client, (0, 0.0))
        self._failures[client] = (count + 1, self.clock())
        if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
            self._failures.pop(next(iter(self._failures)))

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)


class AccessPolicy:
    """What the middleware and the login route check against, built once at start-up."""

    def __init__(self, settings: Settings, throttle: LoginThrottle | None = None):
        check_access_settings(settings)
        self._hasher = PasswordHasher()
        key = secret_key(settings)
        self.password_hash: str | None = None
        self.session_marker: str | None = None
        if settings.password is not None:
            password = settings.password.get_secret_value()
            self.password_hash = self._hasher.hash(password)
            self.session_marker = self._session_marker(password, key)
        self._token_digest = hashlib.sha256(api_token(settings).encode()).digest()
        self.cookie = SessionCookie(key)
        self.throttle = throttle or LoginThrottle()

    @property
    def password_required(self) -> bool:
        return self.password_hash is not None

    def _session_marker(self, password: str, key: str) -> str:
        """What a signed-in session holds: derived from the password (argon2, salted with the
        secret key) and keyed again, so changing the password signs every browser out and the
        cookie reveals nothing about the password."""
        salt = hashlib.sha256(f"avlora.session:{key}".encode()).digest()[:16]
        raw = hash_secret_raw(password.encode(), salt, time_cost=self._hasher.time_cost,
                              memory_cost=self._hasher.memory_cost, parallelism=self._hasher.parallelism,
                              hash_len=32, type=Type.ID)
        return hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()[:32]

    def session_signed_in(self, session: dict) -> bool:
        """Whether ``session`` was signed in with the current password."""
        marker = session.get(_AUTH_KEY)
        return (self.session_marker is not None and isinstance(marker, str)
                and hmac.compare_digest(marker.encode(), self.session_marker.encode()))

    def verify_password(self, candidate: str) -> bool:
        """Check ``candidate`` against the argon2 hash (slow on purpose: call it in a thread)."""
        if self.password_hash is None:
            return False
        try:
            return self._hasher.verify(self.password_hash, candidate)
        except (VerificationError, InvalidHashError):
            return False

    def token_matches(self, candidate: str) -> bool:
        digest = hashlib.sha256(candidate.encode()).digest()
        return hmac.compare_digest(digest, self._token_digest)


def access_policy(request: Request) -> AccessPolicy:
    """The app's policy (installed by :func:`install_access_control`)."""
    return request.app.state.access_policy


def install_access_control(app, settings: Settings | None = None) -> AccessPolicy:
    """Hash the password, load the keys and wrap ``app`` in :class:`AccessMiddleware`."""
    policy = AccessPolicy(settings or get_settings())
    app.state.access_policy = policy
    app.add_middleware(AccessMiddleware, policy=policy)
    return policy


# --- the middleware --------------------------------------------------------------------------

def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


def _bearer(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def _is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class AccessMiddleware:
    """Session cookie in, authentication, CSRF, session cookie out. Pure ASGI."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy):
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # none today; never an unauthenticated way in
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session = self.policy.cookie.load(_cookie(headers, SESSION_COOKIE))
        scope["session"] = session
        send = self._session_writer(scope, send, dict(session))
        bearer = _bearer(headers)

        if bearer is not None and not self.policy.token_matches(bearer):
            await _error(401, "unauthorized", "The bearer token is wrong. Use AVLORA_API_TOKEN (or the "
                         "password, or DATA_DIR/api_token when neither is set).")(scope, receive, send)
            return
        by_token = bearer is not None
        if (self.policy.password_required and not by_token and not self.policy.session_signed_in(session)
                and not _is_open(scope["path"])):
            await self._refuse_anonymous(scope, headers)(scope, receive, send)
            return
        if scope["method"] in UNSAFE_METHODS and not by_token:
            ok, receive = await self._csrf_ok(headers, session, receive)
            if not ok:
                await _error(403, "csrf_failed", "This request has no valid CSRF token. Reload the page "
                             "and try again; scripts send 'Authorization: Bearer <token>'.")(scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        scope["session"] = session = self.policy.cookie.load(_cookie(headers, SESSION_COOKIE))
        bearer = _bearer(headers)
        allowed = self.policy.token_matches(bearer) if bearer is not None else (
            not self.policy.password_required or self.policy.session_signed_in(session))
        if not allowed:
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

    def _refuse_anonymous(self, scope: Scope, headers: Headers) -> Response:
        path = scope.get("path", "")
        query = scope.get("query_string", b"").decode("latin-1")
        target = path + (f"?{query}" if query else "")
        login = "/login?next=" + quote(safe_next(target), safe="")
        wants_page = (scope["method"] in ("GET", "HEAD")
                      and not path.startswith("/api/") and "hx-request" not in headers)
        if wants_page:
            return RedirectResponse(login, status_code=303)
        extra = {"HX-Redirect": login} if "hx-request" in headers else None
        return _error(401, "unauthorized", "Sign in first (the studio has a password), or send "
                      "'Authorization: Bearer <token>'.", extra)

    async def _csrf_ok(self, headers: Headers, session: dict, receive: Receive) -> tuple[bool, Receive]:
        expected = session.get(_CSRF_KEY)
        if not expected:
            return False, receive
        sent = headers.get(CSRF_HEADER)
        if sent is not None:
            return hmac.compare_digest(sent.encode(), str(expected).encode()), receive
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return False, receive  # multipart and JSON bodies are never read here: use the header
        body, receive = await _buffer_body(receive, MAX_FORM_BYTES)
        if body is None:
            return False, receive
        values = parse_qs(body.decode("latin-1"), keep_blank_values=True).get(CSRF_FIELD, [])
        return (len(values) == 1 and hmac.compare_digest(values[0].encode(), str(expected).encode())), receive

    def _session_writer(self, scope: Scope, send: Send, initial: dict) -> Send:
        secure = scope.get("scheme") in ("https", "wss")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("session", {})
                if session != initial:
                    cookie = self.policy.cookie.header(session, secure)
                    message.setdefault("headers", [])
                    message["headers"] = list(message["headers"]) + [(b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        return send_with_cookie


def _cookie(headers: Headers, name: str) -> str | None:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


async def _buffer_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """Read a small body in full and hand back a ``receive`` that replays it, then passes
    further messages (``http.disconnect``) through. ``None`` when it is over ``limit``."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return None, receive
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None, receive
        chunks.append(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay
