"""A real browser (Debian chromium through Playwright) against `avlora serve` with its worker, on
the newcomer's path: create a dataset, upload a mixed batch, see the findings in words, caption with
the keyboard through to "done", preprocess (the toy's noise said so), edit one caption, preprocess
again and see the rest reused, queue a tiny run (labelled as a CPU run), compare, export the
checkpoint (its model card with the trigger written out) and the dataset, import it again."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e



def test_create_upload_caption_reload(studio_env, tmp_path, tmp_path_factory, browser):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    talking = tmp_path / "ema-take-1.mp4"
    talking.write_bytes(media.talking_clip().read_bytes())
    mute = tmp_path / "no-sound.mp4"
    mute.write_bytes(media.clip(audio="none").read_bytes())
    notes = media.text_file("notes.mp4")

    _walk_through_the_studio(studio_env, tmp_path, browser, talking, mute, notes)


def _walk_through_the_studio(studio_env, tmp_path, browser, talking, mute, notes):
    from playwright.sync_api import expect

    with web_server(studio_env, tmp_path / "server.log", with_worker=True) as url:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/datasets")
        page.fill("#name", "Ema talking")
        page.fill("#trigger", "ema_voice")
        page.click("#create-dataset button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Ema talking")

        page.set_input_files("#file-input", [str(talking), str(mute), str(notes)])
        expect(page.locator("#upload-list li.failed")).to_contain_text("not a video")
        expect(page.locator("#upload-list li.ok")).to_have_count(2, timeout=30_000)
        # the grid polls until the worker has checked both clips
        summary = page.locator("#summary-line")
        expect(summary).to_contain_text("2 clips, 1 trainable, 1 blocked", timeout=120_000)
        expect(page.locator(".dropped")).to_contain_text("No audio track")
        talking_card = page.locator(".card", has_text="ema-take-1.mp4")
        expect(talking_card.locator(".badges")).to_contain_text("No transcript")
        mute_card = page.locator(".card", has_text="no-sound.mp4")
        expect(mute_card.locator(".badges")).to_contain_text("No audio track")
        # what a finding means is one click away, not only a hover tooltip
        mute_card.locator(".card-findings summary").click()
        expect(mute_card.locator(".finding-notes")).to_contain_text("The clip has no audio track")
        # the bulk edit sits by the checkboxes, counts the selection and leaves rejected clips out
        talking_card.locator("input[name=clip_ids]").check()
        mute_card.locator("input[name=clip_ids]").check()
        expect(page.locator("#selected-count")).to_have_text("1 clip selected (1 rejected left out)")
        page.check("#include-rejected")
        expect(page.locator("#selected-count")).to_have_text("2 clips selected")
        bulk_box = page.locator("#bulk-panel").bounding_box()
        assert bulk_box["y"] < page.locator("#summary-line").bounding_box()["y"] < bulk_box["y"] + bulk_box["height"] + 120
        page.screenshot(path=str(SCREENSHOTS / "avlora-dataset.png"), full_page=True)

        talking_card.locator(".card-title").click()
        expect(page.locator("h1")).to_contain_text("ema-take-1.mp4")
        page.fill("#visual", "a young woman looks toward the camera")
        page.fill("#transcript", "I think we should start again from the beginning.")
        expect(page.locator("#caption-preview")).to_have_text(
            'ema_voice, a young woman looks toward the camera. '
            'Speech: "I think we should start again from the beginning."')
        page.keyboard.press("Control+s")
        expect(page.locator(".notice")).to_contain_text("Caption saved")
        page.reload()
        expect(page.locator("#transcript")).to_have_value("I think we should start again from the beginning.")
        expect(page.locator("#findings")).not_to_contain_text("missing_transcript")
        page.screenshot(path=str(SCREENSHOTS / "avlora-clip.png"), full_page=True)

        # a click on the waveform moves the player there (the clip is 4 s long), the playhead shows it
        wave = page.locator("#clip-wave").bounding_box()
        page.mouse.click(wave["x"] + wave["width"] * 0.5, wave["y"] + wave["height"] / 2)
        position = page.evaluate("() => document.getElementById('clip-player').currentTime")
        assert 1.7 < position < 2.3, position
        head = page.evaluate("() => parseFloat(document.querySelector('#clip-wave .playhead').style.left)")
        assert 45 < head < 55, head

        # keyboard only: Ctrl+Enter saves and opens the next clip that can train; the other clip
        # is rejected, so this was the last one: the page says the dataset is done
        clip_url = page.url.split("?")[0]
        page.fill("#sounds", "quiet room tone")
        with page.expect_navigation():
            page.keyboard.press("Control+Enter")
        expect(page.locator("h1")).to_contain_text("ema-take-1.mp4")
        expect(page.locator("#dataset-progress")).to_contain_text("Captioning done")
        page.goto(clip_url)
        expect(page.locator("#caption-preview")).to_contain_text("Sounds: quiet room tone.")

        dataset_url = page.locator(".crumbs a").nth(1).get_attribute("href")
        _preprocess_edit_and_reuse(page, url, dataset_url, clip_url)
        _queue_compare_and_export(page, url)

        # export for ltx-trainer, then import that zip through the page's import form
        exported = page.request.get(f"{url}/api/v1{dataset_url}/export")
        assert exported.status == 200
        zip_path = tmp_path / "ema.zip"
        zip_path.write_bytes(exported.body())
        page.goto(f"{url}/datasets")
        page.set_input_files("#import-file", str(zip_path))
        page.fill("#import-name", "Ema again")
        page.click("#import-form button[type=submit]")
        expect(page.locator("h1")).to_contain_text("Ema again")
        expect(page.locator("#summary-line")).to_contain_text("1 clip, 1 trainable", timeout=120_000)
        page.goto(f"{url}/datasets")
        page.screenshot(path=str(SCREENSHOTS / "avlora-datasets.png"), full_page=True)


def _preprocess(page, url: str, dataset_url: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}{dataset_url}")
    page.select_option("#preprocess-model", "toy")
    page.click("#preprocess-button")
    expect(page.locator("h1")).to_contain_text("Preprocess run")
    expect(page.locator("#preprocess-status")).to_have_text("succeeded", timeout=180_000)
    # the decoded previews of the toy model are noise: the page says so, and how to use a real model
    expect(page.locator(".toy-notice")).to_contain_text("AVLORA_MODEL_DIR")


def _preprocess_edit_and_reuse(page, url: str, dataset_url: str, clip_url: str) -> None:
    """Preprocess, change one caption, preprocess again: only that caption's text is computed."""
    from playwright.sync_api import expect

    _preprocess(page, url, dataset_url)
    expect(page.locator("#preprocess-reuse")).to_contain_text("0 reused")
    first = page.url
    page.goto(clip_url)
    page.fill("#sounds", "quiet room tone, a door closes")
    page.keyboard.press("Control+s")
    expect(page.locator(".notice")).to_contain_text("Caption saved")
    page.goto(first)  # the earlier run says what changed, and that only that is computed again
    expect(page.locator("#preprocess-outdated")).to_contain_text("ema-take-1.mp4")
    _preprocess(page, url, dataset_url)
    expect(page.locator("#preprocess-reuse")).to_contain_text("4 reused, 1 computed (text conditions: 1)")
    page.screenshot(path=str(SCREENSHOTS / "avlora-preprocess-reused.png"), full_page=True)


def _queue_compare_and_export(page, url: str) -> None:
    """A tiny run from the form; its page names the CPU; compare; the checkpoint's export."""
    import io
    import zipfile

    import yaml
    from playwright.sync_api import expect

    page.click("#train-link")
    config = yaml.safe_load(page.locator("#config-yaml").input_value())
    config["lora"].update(rank=4, alpha=4)
    config["optimization"].update(steps=2, gradient_checkpointing=False)
    config["checkpoints"]["interval"] = 2
    config["validation"].update(variants=["lora"], video_dims=[64, 64, 9], inference_steps=2,
                                prompts=["{trigger}, a woman speaks calmly: hello there"])
    page.fill("#config-yaml", yaml.safe_dump(config, sort_keys=False))
    expect(page.locator("#queue-button")).to_be_enabled()
    page.click("#queue-button")
    expect(page.locator("h1")).to_contain_text("Run #")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=240_000)
    expect(page.locator("#h-gpu-label")).to_have_text("Device")  # not "GPU: cpu"
    expect(page.locator(".toy-notice")).to_have_count(1)
    run_id = int(page.url.rstrip("/").split("/")[-1])
    page.goto(f"{url}/runs/{run_id}/compare")
    expect(page.locator(".toy-notice")).to_have_count(1)
    exported = page.request.get(f"{url}/api/v1/runs/{run_id}/checkpoints/2/export")
    assert exported.status == 200, exported.text()
    with zipfile.ZipFile(io.BytesIO(exported.body())) as archive:
        card = next(archive.read(n).decode() for n in archive.namelist() if n.endswith("README.md"))
    assert "ema_voice, a woman speaks calmly" in card and "{trigger}" not in card
