"""The top bar every page shares: its links, and the log-out form once a password protects the studio."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from app.templating import TEMPLATES_DIR
from tests.support import reset_app_caches

PASSWORD = "correct horse battery staple"


def _nav(html: str) -> str:
    return re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)


def _logout_form(html: str) -> str | None:
    found = re.search(r'<form method="post" action="/logout"[^>]*>(.*?)</form>', html, re.S)
    return found.group(1) if found else None


@pytest.fixture
def locked(migrated_env, monkeypatch) -> TestClient:
    """A browser session on a studio with a password (not signed in yet)."""
    monkeypatch.setenv("AVLORA_PASSWORD", PASSWORD)
    reset_app_caches()
    from app.main import create_app

    return TestClient(create_app())


def _sign_in(client: TestClient) -> None:
    page = client.get("/login?next=/datasets").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    signed_in = client.post("/login", data={"csrf_token": token, "password": PASSWORD, "next": "/datasets"},
                            follow_redirects=False)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/datasets"


def test_nav_links_lead_to_the_studio_pages(browser_client):
    nav = _nav(browser_client.get("/datasets").text)
    links = re.findall(r'<a href="([^"]+)">([^<]+)</a>', nav)
    assert ("/lora/check", "Check a LoRA") in links and ("/datasets", "Datasets") in links
    assert ("/jobs", "Jobs") in links
    for href, _label in links:
        assert browser_client.get(href).status_code == 200, href
    check = browser_client.get("/lora/check").text
    assert 'data-api-form="/api/v1/lora/verify"' in check  # sent by studio.js with the CSRF header


def test_no_log_out_control_without_a_password(browser_client):
    assert _logout_form(browser_client.get("/datasets").text) is None


def test_signed_in_pages_offer_log_out_and_it_signs_out(locked):
    assert _logout_form(locked.get("/login").text) is None  # not signed in: nothing to log out of
    _sign_in(locked)
    page = locked.get("/datasets")
    assert page.status_code == 200
    form = _logout_form(page.text)
    assert form is not None and '<button type="submit">Log out</button>' in form
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    assert token == re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text).group(1)

    logged_out = locked.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert logged_out.status_code == 303 and logged_out.headers["location"] == "/login"
    again = locked.get("/datasets", follow_redirects=False)
    assert again.status_code == 303 and again.headers["location"].startswith("/login?next=")


def test_shared_templates_have_no_inline_scripts():
    for name in ("base.html", "lora_check.html"):
        text = (TEMPLATES_DIR / name).read_text()
        for tag in re.findall(r"<script[^>]*>", text):
            assert "src=" in tag, f"inline script in {name}"
        assert not re.search(r"\son[a-z]+=", text), f"inline event handler in {name}"


def test_the_login_page_shows_no_nav_to_a_signed_out_visitor(locked):
    assert '<nav aria-label="Main">' not in locked.get("/login").text  # every link would lead back here
    _sign_in(locked)
    assert '<nav aria-label="Main">' in locked.get("/datasets").text
