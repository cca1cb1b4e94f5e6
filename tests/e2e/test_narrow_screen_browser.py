"""On a phone-sized screen pages do not widen the whole page (Debian chromium through Playwright): the
run page's action buttons wrap and a wide table scrolls inside itself; the preprocess page stacks each
clip's cells instead of cutting off the decoded column at the screen's edge."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e

PAGE_WIDTH = "() => document.documentElement.scrollWidth"


def test_pages_fit_a_narrow_screen(studio_env, migrated_env, tmp_path_factory, tmp_path, browser):
    from core.config import get_settings
    from core.db import session_scope
    from tests.media_factory import MediaFactory
    from tests.unit.web.compare_support import seed_run

    video = MediaFactory(tmp_path_factory.mktemp("media")).clip(duration=1.0)
    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir, video=video)

    with web_server(studio_env, tmp_path / "server.log") as url:
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(f"{url}/runs/{seeded.run_id}")
        page.locator("#checkpoints tbody tr").first.wait_for()
        page.screenshot(path=str(SCREENSHOTS / "avlora-run-narrow.png"), full_page=True)
        assert page.evaluate(PAGE_WIDTH) <= 390
        # a table wider than the screen (long layer lists) scrolls inside itself
        page.evaluate("() => document.querySelector('#checkpoints td:nth-child(2)').textContent = 'audio_to_video_attn'.repeat(8)")
        assert page.evaluate(PAGE_WIDTH) <= 390
        assert page.evaluate("() => document.querySelector('#checkpoints').scrollWidth") > 390

        _preprocess_page_fits_a_phone(page, url, seeded.preprocess_run_id)


def _preprocess_page_fits_a_phone(page, url: str, preprocess_run_id: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/preprocess/{preprocess_run_id}")
    decoded = page.locator(".preprocess-clips canvas.waveform").first
    expect(decoded).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "avlora-preprocess-narrow.png"), full_page=True)
    assert page.evaluate(PAGE_WIDTH) <= 390
    table = page.evaluate("() => { const t = document.querySelector('.preprocess-clips');"
                          " return [t.scrollWidth, t.clientWidth]; }")
    assert table[0] <= table[1], table  # nothing hidden to the right of the table's edge
    box = decoded.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390, box
