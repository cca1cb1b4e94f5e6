"""On a phone-sized screen the run page does not widen the whole page: its action buttons wrap and a
wide table scrolls inside itself (Debian chromium through Playwright)."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e

PAGE_WIDTH = "() => document.documentElement.scrollWidth"


def test_tables_scroll_inside_themselves_on_a_narrow_screen(studio_env, migrated_env, tmp_path_factory,
                                                            tmp_path, browser):
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
