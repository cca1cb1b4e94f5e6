"""The compare page in a real browser (Debian chromium through Playwright): play a row, move with
the keyboard, switch cells at the same position, cast a blind vote and see it counted.

The run's rows are written straight into the database with generated wavs (no training)."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e




@pytest.fixture
def seeded_run(migrated_env, tmp_path_factory):
    """A run with two prompts x (training clip, base, step 2, step 4), measured by the cpu job."""
    from core.config import get_settings
    from core.db import session_scope
    from core.services.compare import queue_sample_metrics
    from tests.media_factory import MediaFactory
    from tests.unit.web.compare_support import seed_run
    from tests.unit.web.helpers import run_pending_jobs

    video = MediaFactory(tmp_path_factory.mktemp("media")).clip(duration=1.0)
    with session_scope() as session:
        seeded = seed_run(session, get_settings().data_dir, video=video)
    with session_scope() as session:
        queue_sample_metrics(session, seeded.run_id)
    assert run_pending_jobs() == ["succeeded"]
    return seeded


def _cell(page, row: int, col: int):
    return page.locator(f'td.cell[data-row="{row}"][data-col="{col}"]')


def _is_playing(page, row: int, col: int) -> bool:
    return page.evaluate(
        "([r, c]) => { const a = document.querySelector(`td.cell[data-row=\"${r}\"][data-col=\"${c}\"] audio`);"
        " return !!a && !a.paused; }", [row, col])


def test_play_a_row_move_with_keys_and_vote_blind(studio_env, seeded_run, tmp_path, browser):
    from playwright.sync_api import expect

    with web_server(studio_env, tmp_path / "server.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{url}/runs/{seeded_run.run_id}/compare")
        expect(page.locator("h1")).to_contain_text(f"Compare run #{seeded_run.run_id}")
        expect(page.locator("td.cell")).to_have_count(8)
        expect(_cell(page, 0, 2)).to_have_class(re.compile("flagged-error"))  # step 2 buzzes
        # the voice charts are drawn beside the others, DNSMOS flags the buzz, step 4 is suggested
        expect(page.locator("canvas[data-chart]")).to_have_count(10)
        expect(page.locator("figcaption", has_text="Speech quality (DNSMOS, 1-5)")).to_be_visible()
        expect(page.locator("#flag-list")).to_contain_text("quality_dropped")
        expect(page.locator("#best-suggestion")).to_contain_text("Suggested: step 4")
        inked = page.evaluate("() => Object.fromEntries([...document.querySelectorAll('canvas[data-chart]')].map(c => {"
                              " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;"
                              " for (let i = 3; i < d.length; i += 4) if (d[i]) n++;"
                              " return [JSON.parse(c.dataset.chart).metric, n]; }))")
        # quality is plotted; these prompts have no Speech: "..." words, so the WER chart only says so
        assert inked["quality_mos"] > 3 * inked["wer"] > 0, inked
        # ratios that live in 0..1 are drawn on an axis inside 0..1 (not -1.16..1.16 when flat)
        axes = page.evaluate("() => Object.fromEntries([...document.querySelectorAll('canvas[data-chart]')].map(c =>"
                             " [JSON.parse(c.dataset.chart).metric, c.dataset.axis]))")
        for metric in ("clipping_ratio", "speech_ratio"):
            low, high = map(float, axes[metric].split())
            assert 0 <= low < high <= 1, (metric, axes[metric])

        # the transport plays row 1 cell by cell: training clip, then base, then each checkpoint
        page.click("#play-row")
        expect(page.locator("#now-playing")).to_contain_text("training clip", timeout=5_000)
        expect(_cell(page, 0, 0)).to_have_class(re.compile("playing"))
        expect(page.locator("#now-playing")).to_contain_text("Base (LoRA off) (prompt 1)", timeout=10_000)
        expect(_cell(page, 0, 1)).to_have_class(re.compile("current"))
        page.keyboard.press("Escape")
        assert not _is_playing(page, 0, 1)

        # keyboard: arrows move between cells, number keys pick a column, space plays
        _cell(page, 0, 0).focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowDown")
        expect(_cell(page, 1, 1)).to_have_class(re.compile("current"))
        page.keyboard.press("3")
        expect(_cell(page, 1, 2)).to_have_class(re.compile("current"))
        page.keyboard.press(" ")
        expect(_cell(page, 1, 2)).to_have_class(re.compile("playing"))
        page.wait_for_timeout(400)
        page.keyboard.press("4")  # while playing: the same moment of the next checkpoint
        expect(_cell(page, 1, 3)).to_have_class(re.compile("playing"))
        assert not _is_playing(page, 1, 2)
        position = page.evaluate("() => document.querySelector('td.cell[data-row=\"1\"][data-col=\"3\"] audio').currentTime")
        assert position > 0.2, position
        page.screenshot(path=str(SCREENSHOTS / "avlora-compare.png"), full_page=True)
        page.keyboard.press("Escape")

        # a cell played to its end says so, instead of "Playing …" forever
        _cell(page, 0, 1).focus()
        page.keyboard.press(" ")
        expect(page.locator("#now-playing")).to_contain_text("Finished Base (LoRA off) (prompt 1)", timeout=10_000)

        # blind A/B: hidden labels, pick one, see the vote counted and the labels revealed
        page.click("#blind-start")
        expect(page.locator("#blind-trial")).to_be_visible()
        expect(page.locator("#blind-trial")).not_to_contain_text("step")
        page.click("button.vote[data-choice='a']")
        expect(page.locator("#vote-summary caption")).to_have_text("1 vote cast")
        expect(page.locator("#blind-result")).to_contain_text("You picked A")
        expect(page.locator("#vote-summary tbody tr")).to_have_count(2)
        page.screenshot(path=str(SCREENSHOTS / "avlora-compare-blind.png"), full_page=True)
        page.reload()
        expect(page.locator("#vote-summary caption")).to_have_text("1 vote cast")
        assert errors == []

        _three_checkpoints_fit_a_1440_px_screen(page, seeded_run.run_id)


def _three_checkpoints_fit_a_1440_px_screen(page, run_id: int) -> None:
    """With a third checkpoint, a best mark and blind scores in the headers, the grid (training clip,
    base, three steps) does not scroll sideways on a 1440 px screen."""
    from playwright.sync_api import expect

    from core.db import session_scope
    from core.models import Checkpoint, Sample

    with session_scope() as session:
        for sample in session.query(Sample).filter_by(run_id=run_id, step=4).all():
            session.add(Sample(run_id=run_id, step=6, prompt_index=sample.prompt_index, seed=sample.seed,
                               variant=sample.variant, wav=sample.wav, mp4=sample.mp4, metrics=sample.metrics))
        session.add(Checkpoint(run_id=run_id, step=6, files={}))
        session.commit()
    page.set_viewport_size({"width": 1440, "height": 900})
    page.reload()
    page.select_option("#best-step", "2")
    page.click("#best button[type=submit]")
    expect(page.locator("#compare-grid thead th[data-col]")).to_have_count(5)
    expect(page.locator("#compare-grid thead .badge.best")).to_have_count(1)
    page.wait_for_load_state("networkidle")  # the waveforms are in
    page.screenshot(path=str(SCREENSHOTS / "avlora-compare-1440.png"))
    scroll = page.evaluate("() => { const s = document.querySelector('.compare-scroll'); return [s.scrollWidth, s.clientWidth]; }")
    assert scroll[0] <= scroll[1], scroll
