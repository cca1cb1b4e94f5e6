"""Pages that must work on a studio without internet (Debian chromium through Playwright): every
request to another host is refused, as it would fail on an offline machine."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.support import web_server

pytestmark = pytest.mark.e2e


def _offline(page, studio_url: str) -> list[str]:
    """Refuse every request not to the studio's own host; returns the list of refused URLs."""
    refused: list[str] = []
    own = urlsplit(studio_url).netloc

    def route(request_route):
        if urlsplit(request_route.request.url).netloc == own:
            request_route.continue_()
        else:
            refused.append(request_route.request.url)
            request_route.abort()

    page.route("**/*", route)
    return refused


def test_the_api_page_renders_without_internet(migrated_env, tmp_path, browser):
    from playwright.sync_api import expect

    with web_server(migrated_env, tmp_path / "server.log") as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        refused = _offline(page, url)
        page.goto(f"{url}/datasets")
        page.get_by_role("link", name="API").click()
        # the operations list: one block per endpoint, e.g. the caption PUT
        expect(page.locator(".opblock").first).to_be_visible(timeout=15_000)
        expect(page.locator(".opblock-summary-path", has_text="/api/v1/clips/{clip_id}/caption").first).to_be_visible()
        assert refused == []
