"""Speech in a real browser (Debian chromium through Playwright) against `avlora serve` with its worker:
transcribe a clip spoken by espeak-ng and see the automatic transcript; plan a long take's split,
see it over the waveform, get a refused part explained, apply it and find the parts in the grid."""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e

LINES = ("please call me tomorrow morning. i would like a cup of coffee. "
         "we are going to the store. the children are playing in the park.")
PAGE_WIDTH = "() => document.documentElement.scrollWidth"


def test_transcribe_then_plan_and_apply_a_split(studio_env, tmp_path, browser):
    from playwright.sync_api import expect

    from tests.media_factory import ClipSpec, write_clip

    line = write_clip(tmp_path / "line.mp4", ClipSpec(voice="en-us", text="please call me tomorrow morning",
                                                        duration=4.0, pause_s=2.0))
    long_take = write_clip(tmp_path / "long.mov", ClipSpec(duration=20.0, fps=25, text=LINES, pause_s=0.8, voice="en-us",
                                                             container="mov", audio_codec="pcm_s16le"))

    with web_server(studio_env, tmp_path / "server.log", with_worker=True) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/datasets")
        page.fill("#name", "Speech")
        page.fill("#trigger", "ema_voice")
        page.fill("#buckets", "64x64x49")
        page.click("#create-dataset button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Speech")
        dataset_url = page.url

        # a short line: Transcribe fills the transcript, marked automatic
        page.set_input_files("#file-input", str(line))
        expect(page.locator("#summary-line")).to_contain_text("1 clip, 1 trainable", timeout=120_000)
        page.locator(".card", has_text="line.mp4").locator(".card-title").click()
        expect(page.locator("#findings")).to_contain_text("missing_transcript")
        page.click("#transcribe")
        expect(page.locator("#transcript")).to_have_value(re.compile(r"(call|tomorrow|morning)", re.I), timeout=120_000)
        expect(page.locator("#transcript-auto")).to_have_text("automatic — check it")
        expect(page.locator("#confirm-transcript")).to_be_visible()
        expect(page.locator("#heard-words")).to_be_visible()
        expect(page.locator("#findings")).not_to_contain_text("missing_transcript")
        expect(page.locator("#caption-preview")).to_contain_text('Speech: "')
        page.screenshot(path=str(SCREENSHOTS / "avlora-transcribed.png"), full_page=True)
        page.click("#confirm-transcript")
        expect(page.locator(".notice")).to_contain_text("Caption saved")
        expect(page.locator("#transcript-auto")).to_have_count(0)

        # a 20 s take: plan a split at its pauses, shown over the waveform and as editable parts
        page.goto(dataset_url)
        page.set_input_files("#file-input", str(long_take))
        expect(page.locator("#summary-line")).to_contain_text("2 clips", timeout=30_000)
        expect(page.locator(".card", has_text="long.mov").locator(".badges")).to_contain_text("Long clip", timeout=120_000)
        page.locator(".card", has_text="long.mov").locator(".card-title").click()
        clip_url = page.url
        page.locator("#findings [data-plan-split]").click()  # the long_clip finding's action
        parts = page.locator("#split-parts .part")
        expect(parts.first).to_be_visible(timeout=120_000)
        count = parts.count()
        assert count >= 3
        expect(page.locator("#split-regions .region")).to_have_count(count)
        expect(page.locator("#split-labels .region-label")).to_have_count(count)
        page.locator("#split").scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "avlora-split-plan.png"), full_page=True)

        narrow = browser.new_page(viewport={"width": 390, "height": 844})
        narrow.goto(clip_url)
        expect(narrow.locator("#split-parts .part")).to_have_count(count)
        narrow.screenshot(path=str(SCREENSHOTS / "avlora-split-plan-narrow.png"), full_page=True)
        assert narrow.evaluate(PAGE_WIDTH) <= 390
        narrow.close()

        # a part too short for the smallest bucket is refused with a message naming it; nothing is lost
        last = parts.nth(count - 1)
        start = float(last.locator("input[data-key=start_s]").input_value())
        last.locator("input[data-key=end_s]").fill(f"{start + 0.5:.2f}")
        expect(last.locator(".part-length")).to_contain_text("too short")
        page.click("#apply-split")
        expect(page.locator("#split-error")).to_contain_text(f"Part {count}", timeout=10_000)
        expect(page.locator("#split-error")).to_contain_text("smallest bucket")
        expect(parts).to_have_count(count)
        expect(last.locator("input[data-key=end_s]")).to_have_value(f"{start + 0.5:.2f}")

        # dropping that part leaves it out of the split
        last.locator("button[data-action=drop]").click()
        expect(parts).to_have_count(count - 1)
        count -= 1

        page.click("#apply-split")
        heading = page.locator("#split h2")
        expect(heading).to_have_text(f"Split into {count} clips", timeout=120_000)
        expect(page.locator("#split a")).to_have_count(count)
        expect(page.locator("#split a").first).to_have_text("long_part01.mov")

        page.goto(dataset_url)
        expect(page.locator("#summary-line")).to_contain_text("1 split into parts")
        for number in range(1, count + 1):
            expect(page.locator(".card", has_text=f"long_part{number:02d}.mov")).to_be_visible(timeout=60_000)
        expect(page.locator(".card.status-split")).to_contain_text(f"Split into {count}")
        expect(page.locator("#summary-line")).to_contain_text(f"{count + 2} clips, {count + 1} trainable",
                                                              timeout=120_000)

        # bulk: transcribe the selected clips (none selected first: told what to do)
        status = page.locator("#bulk-transcribe-status")
        page.click("#transcribe-selected")
        expect(status).to_contain_text("Select analysed clips")
        page.locator(".card", has_text="line.mp4").locator("input[name=clip_ids]").check()
        page.click("#transcribe-selected")
        expect(status).to_contain_text("Transcribed 1 clip", timeout=120_000)
        page.screenshot(path=str(SCREENSHOTS / "avlora-split-grid.png"), full_page=True)
