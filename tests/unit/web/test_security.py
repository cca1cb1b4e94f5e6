"""Access control: CSRF on every state-changing request, password login, bearer token."""

from __future__ import annotations

import asyncio
import re
import stat

import pytest
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from app.security import (
    AccessMiddleware,
    AccessPolicy,
    LoginThrottle,
    api_token,
    check_access_settings,
    safe_next,
)
from app.templating import templates
from core.config import Settings
from tests.support import reset_app_caches

PASSWORD = "correct horse battery staple"

probe = APIRouter()


@probe.get("/_test/form", response_class=HTMLResponse)
def form_page(request: Request) -> str:
    """A page rendering the CSRF token the way templates do."""
    return templates.env.from_string(
        '<input type="hidden" name="csrf_token" value="{{ csrf_token(request) }}">').render(request=request)


@probe.post("/_test/echo-form")
async def echo_form(request: Request) -> dict:
    form = await request.form()
    return {"fields": {k: str(v) for k, v in form.items()}}


@probe.post("/_test/stream")
async def count_streamed_bytes(request: Request) -> dict:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return {"bytes": size}


@probe.get("/api/v1/_test/thing")
def api_thing() -> dict:
    return {"ok": True}


@probe.post("/api/v1/_test/thing")
def api_change() -> dict:
    return {"changed": True}


def make_client(monkeypatch, base_url: str = "http://testserver", **env: str) -> TestClient:
    """A TestClient on a fresh app built from the current AVLORA_ environment plus ``env``."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_app_caches()
    from app.main import create_app

    app = create_app()
    app.include_router(probe)
    return TestClient(app, base_url=base_url)


def token_of(client: TestClient) -> str:
    html = client.get("/_test/form").text
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def set_cookie_header(response) -> str:
    return "; ".join(v for k, v in response.headers.multi_items() if k == "set-cookie")


# --- CSRF (no password: it still guards a localhost studio from other sites) -----------------

def test_state_change_without_token_is_refused(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    for method in ("post", "put", "patch", "delete"):
        response = client.request(method.upper(), "/api/v1/_test/thing", json={"a": 1})
        assert response.status_code == 403, method
        assert response.json()["error"]["code"] == "csrf_failed"
        assert response.json()["error"]["message"]


def test_csrf_header_of_the_session_is_accepted(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    token = token_of(client)
    ok = client.post("/api/v1/_test/thing", headers={"X-CSRF-Token": token})
    assert ok.status_code == 200 and ok.json() == {"changed": True}
    wrong = client.post("/api/v1/_test/thing", headers={"X-CSRF-Token": token + "x"})
    assert wrong.status_code == 403


def test_token_of_another_session_is_refused(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    token = token_of(client)
    other = TestClient(client.app)  # a cross-site request carries no (SameSite=Lax) cookie
    assert other.post("/api/v1/_test/thing", headers={"X-CSRF-Token": token}).status_code == 403
    assert other.post("/_test/echo-form", data={"csrf_token": token}).status_code == 403


def test_urlencoded_form_field_is_accepted_and_the_route_still_reads_the_form(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    token = token_of(client)
    response = client.post("/_test/echo-form", data={"csrf_token": token, "name": "ema"})
    assert response.status_code == 200
    assert response.json()["fields"] == {"csrf_token": token, "name": "ema"}
    assert client.post("/_test/echo-form", data={"csrf_token": "nope", "name": "ema"}).status_code == 403


def test_multipart_needs_the_header_and_streams_through(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    token = token_of(client)
    payload = b"\0" * 300_000
    files = {"files": ("clip.mp4", payload, "video/mp4")}
    # The form field is not looked for in multipart bodies (they are never read by the middleware).
    refused = client.post("/_test/stream", files=files, data={"csrf_token": token})
    assert refused.status_code == 403
    ok = client.post("/_test/stream", files=files, headers={"X-CSRF-Token": token})
    assert ok.status_code == 200
    assert ok.json()["bytes"] > len(payload)  # the whole multipart body reached the route


def test_bearer_token_skips_csrf_and_a_wrong_one_is_401(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    token = api_token()
    token_file = Settings().data_dir / "api_token"
    assert token_file.read_text().strip() == token and stat.S_IMODE(token_file.stat().st_mode) == 0o600
    anonymous = TestClient(client.app)
    ok = anonymous.post("/api/v1/_test/thing", headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200
    wrong = anonymous.post("/api/v1/_test/thing", headers={"Authorization": "Bearer guessed"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "unauthorized"


def test_reading_needs_no_token_without_password(studio_env, monkeypatch):
    client = make_client(monkeypatch)
    assert client.get("/api/v1/_test/thing").json() == {"ok": True}
    assert client.get("/login", follow_redirects=False).status_code == 303  # no login page needed


def test_middleware_does_not_read_multipart_bodies_and_passes_disconnects(studio_env):
    """Pure ASGI: an upload route sees every body message itself, including a disconnect."""
    policy = AccessPolicy(Settings())
    seen: list[str] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect":
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    session = {"csrf": "t0ken"}
    cookie = policy.cookie.dump(session)
    messages = [{"type": "http.request", "body": b"--b\r\n", "more_body": True}, {"type": "http.disconnect"}]
    pulled = 0

    async def receive():
        nonlocal pulled
        pulled += 1
        return messages.pop(0)

    async def send(message):
        if message["type"] == "http.response.start":
            assert message["status"] == 200

    scope = {"type": "http", "method": "POST", "path": "/api/v1/datasets/1/clips", "query_string": b"",
             "scheme": "http", "headers": [(b"content-type", b"multipart/form-data; boundary=b"),
                                           (b"x-csrf-token", b"t0ken"),
                                           (b"cookie", f"avlora_session={cookie}".encode())]}
    asyncio.run(AccessMiddleware(app, policy)(scope, receive, send))
    assert seen == ["http.request", "http.disconnect"]
    assert pulled == 2


# --- password login ------------------------------------------------------------------------

@pytest.fixture
def locked(studio_env, monkeypatch):
    """A client on a studio with a password."""
    return make_client(monkeypatch, AVLORA_PASSWORD=PASSWORD)


def login(client: TestClient, password: str, next_url: str = "/"):
    page = client.get(f"/login?next={next_url}")
    assert page.status_code == 200
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return client.post("/login", data={"csrf_token": token, "password": password, "next": next_url},
                       follow_redirects=False)


def test_pages_redirect_to_login_and_api_answers_401(locked):
    page = locked.get("/_test/form?x=1", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=%2F_test%2Fform%3Fx%3D1"
    api = locked.get("/api/v1/_test/thing")
    assert api.status_code == 401 and api.json()["error"]["code"] == "unauthorized"
    assert locked.get("/api/v1/datasets").status_code == 401  # the real API too
    assert locked.get("/datasets", follow_redirects=False).headers["location"] == "/login?next=%2Fdatasets"
    htmx = locked.post("/api/v1/_test/thing", headers={"HX-Request": "true"})
    assert htmx.status_code == 401 and htmx.headers["HX-Redirect"].startswith("/login?next=")


def test_healthz_static_and_login_stay_open(locked):
    assert locked.get("/healthz").status_code == 200
    assert locked.get("/login").status_code == 200
    static = locked.get("/static/vendor/does-not-exist.js", follow_redirects=False)
    assert static.status_code == 404  # reached StaticFiles, not the login redirect


def test_wrong_password_is_refused_and_the_right_one_opens_the_studio(locked):
    wrong = login(locked, "not it", "/_test/form")
    assert wrong.status_code == 401 and "Wrong password" in wrong.text
    assert locked.get("/_test/form", follow_redirects=False).status_code == 303

    right = login(locked, PASSWORD, "/_test/form")
    assert right.status_code == 303 and right.headers["location"] == "/_test/form"
    cookie = set_cookie_header(right)
    assert "avlora_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here
    assert locked.get("/_test/form").status_code == 200
    assert locked.get("/api/v1/_test/thing").json() == {"ok": True}

    token = token_of(locked)
    assert locked.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
    assert locked.get("/_test/form", follow_redirects=False).status_code == 303
    assert locked.get("/api/v1/_test/thing").status_code == 401


def test_login_form_itself_needs_the_csrf_token(locked):
    locked.get("/login")
    response = locked.post("/login", data={"password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 403


def test_login_issues_a_new_csrf_token(locked):
    before = re.search(r'name="csrf_token" value="([^"]+)"', locked.get("/login").text).group(1)
    assert login(locked, PASSWORD).status_code == 303
    assert token_of(locked) != before


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example",
                                    "javascript:alert(1)", "", "evil", "/x\r\nSet-Cookie: a=b"])
def test_next_is_never_another_site(target):
    assert safe_next(target) == "/"


def test_next_keeps_a_local_path():
    assert safe_next("/datasets/3?tab=clips") == "/datasets/3?tab=clips"


def test_login_never_redirects_off_site(locked):
    response = login(locked, PASSWORD, "https://evil.example/")
    assert response.status_code == 303 and response.headers["location"] == "/"


def test_bearer_opens_the_api_with_a_password(studio_env, monkeypatch):
    client = make_client(monkeypatch, AVLORA_PASSWORD=PASSWORD)
    assert client.get("/api/v1/_test/thing", headers={"Authorization": f"Bearer {PASSWORD}"}).status_code == 200
    separate = make_client(monkeypatch, AVLORA_API_TOKEN="script-token-123")
    ok = separate.post("/api/v1/_test/thing", headers={"Authorization": "Bearer script-token-123"})
    assert ok.status_code == 200
    assert separate.get("/api/v1/_test/thing", headers={"Authorization": f"Bearer {PASSWORD}"}).status_code == 401


def test_failed_logins_are_throttled(locked):
    now = [1000.0]
    locked.app.state.access_policy.throttle = LoginThrottle(max_failures=3, lockout_s=10, clock=lambda: now[0])
    for _ in range(3):
        assert login(locked, "guess").status_code == 401
    blocked = login(locked, PASSWORD)
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) == 10
    now[0] += 11
    assert login(locked, PASSWORD).status_code == 303


def test_session_cookie_is_secure_behind_https(studio_env, monkeypatch):
    client = make_client(monkeypatch, base_url="https://testserver", AVLORA_PASSWORD=PASSWORD)
    page = client.get("/login")
    assert "Secure" in set_cookie_header(page)


def test_forged_session_cookie_is_ignored(locked):
    locked.cookies.set("avlora_session", '{"auth":true}.forged.sig')
    assert locked.get("/api/v1/_test/thing").status_code == 401


# --- keys and the password hash ------------------------------------------------------------

def test_password_is_kept_only_as_an_argon2_hash(studio_env):
    policy = AccessPolicy(Settings(password=PASSWORD))
    assert policy.password_hash.startswith("$argon2id$")
    assert all(PASSWORD not in repr(value) for value in vars(policy).values())
    assert policy.verify_password(PASSWORD) and not policy.verify_password(PASSWORD + " ")


def test_generated_keys_are_private_files_and_survive_a_restart(studio_env, monkeypatch):
    first = make_client(monkeypatch, AVLORA_PASSWORD=PASSWORD)
    assert login(first, PASSWORD).status_code == 303
    data_dir = Settings().data_dir
    assert stat.S_IMODE((data_dir / "secret_key").stat().st_mode) == 0o600
    assert not (data_dir / "api_token").exists()  # the password is the token
    second = make_client(monkeypatch)  # a restart: new app, same DATA_DIR
    second.cookies = first.cookies
    assert second.get("/api/v1/_test/thing").status_code == 200


def test_changing_the_password_signs_every_browser_out(studio_env, monkeypatch):
    first = make_client(monkeypatch, AVLORA_PASSWORD=PASSWORD)
    assert login(first, PASSWORD).status_code == 303
    restarted = make_client(monkeypatch, AVLORA_PASSWORD="a new password")  # same secret key
    restarted.cookies = first.cookies
    assert restarted.get("/api/v1/_test/thing").status_code == 401
    assert PASSWORD not in first.cookies["avlora_session"]


def test_secret_key_from_settings_is_used(studio_env, monkeypatch):
    make_client(monkeypatch, AVLORA_SECRET_KEY="k" * 40, AVLORA_PASSWORD=PASSWORD)
    assert not (Settings().data_dir / "secret_key").exists()


def test_empty_password_is_refused(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        check_access_settings(Settings(data_dir=tmp_path, password="  "))


def test_serve_refuses_a_public_host_without_password(studio_env, capsys):
    from avlora.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--no-worker"]) == 2
    assert "without a password" in capsys.readouterr().err
    assert not (Settings().data_dir / "studio.sqlite3").exists()  # refused before migrating
