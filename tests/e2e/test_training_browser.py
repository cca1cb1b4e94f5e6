"""A real browser (Debian chromium through Playwright) against `avlora serve` with its worker and
the toy model: preprocess a captioned dataset from its page and listen, fill the run form (the
linter answers as you type), queue a tiny sanity run and watch it reach "succeeded" with the
loss chart drawn, its checkpoints and samples listed; the rows that arrived live are those a reload
renders, and the reload's replay of the stream leaves them as they are."""

from __future__ import annotations

import time

import httpx
import pytest
import yaml

from tests.e2e.conftest import SCREENSHOTS
from tests.support import web_server

pytestmark = pytest.mark.e2e

TRIGGER = "ema_voice"
BUCKET = "64x64x9"
STEPS, INTERVAL = 6, 3
# Run before the page's scripts: counts the checkpoint rows and sample tiles added or removed once the
# page is parsed (the server-rendered ones are not counted), and notes when the event stream closed.
WATCH_ROWS = """
window.rowChanges = 0;
document.addEventListener("htmx:sseClose", function () { window.streamClosed = true; });
document.addEventListener("DOMContentLoaded", function () {
  new MutationObserver(function (records) {
    records.forEach(function (record) {
      var nodes = Array.from(record.addedNodes).concat(Array.from(record.removedNodes));
      window.rowChanges += nodes.filter(function (n) { return n.tagName === "TR" || n.tagName === "LI"; }).length;
    });
  }).observe(document.getElementById("run-live"), { childList: true, subtree: true });
});
"""
ROW_MARKUP = """() => ({
  checkpoints: Array.from(document.querySelectorAll("#checkpoints tbody tr"), (row) => row.outerHTML),
  samples: Array.from(document.querySelectorAll("#samples li"), (tile) => tile.outerHTML),
})"""


def _captioned_dataset(url: str, clip_path) -> int:
    """A dataset with one talking clip, checked by the worker and captioned (through the JSON API)."""
    from app.security import api_token

    api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {api_token()}"}, timeout=30)
    dataset = api.post("/api/v1/datasets", json={"name": "Ema", "trigger": TRIGGER, "buckets": BUCKET}).json()
    (clip,) = api.post(f"/api/v1/datasets/{dataset['id']}/clips",
                       files=[("files", ("take1.mp4", clip_path.read_bytes(), "video/mp4"))]).json()
    deadline = time.monotonic() + 120
    while api.get(f"/api/v1/clips/{clip['id']}").json()["status"] != "ready":
        assert time.monotonic() < deadline, "the worker did not check the clip"
        time.sleep(0.5)
    saved = api.put(f"/api/v1/clips/{clip['id']}/caption", json={
        "visual": "a woman looks at the camera", "voice": "speaks calmly",
        "transcript": "Hello there, how are you today?", "sounds": "quiet room"})
    assert saved.status_code == 200, saved.text
    return dataset["id"]


def _tiny(config_yaml: str) -> str:
    """The form's YAML made small for the toy model on a CPU: rank 4, one variant, tiny samples."""
    data = yaml.safe_load(config_yaml)
    data["lora"].update(rank=4, alpha=4)
    data["optimization"]["gradient_checkpointing"] = False
    data["validation"].update(variants=["lora"], prompts=["{trigger}, a woman speaks calmly: hello there"])
    return yaml.safe_dump(data, sort_keys=False)


def test_preprocess_and_train_from_the_browser(studio_env, tmp_path, tmp_path_factory, browser):
    from tests.media_factory import MediaFactory

    clip = MediaFactory(tmp_path_factory.mktemp("media")).talking_clip()
    with web_server(studio_env, tmp_path / "server.log", with_worker=True) as url:
        dataset_id = _captioned_dataset(url, clip)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _preprocess_and_listen(page, url, dataset_id)
        _fill_the_run_form(page)
        _watch_the_run(page, url)


def _preprocess_and_listen(page, url: str, dataset_id: int) -> None:
    from playwright.sync_api import expect

    page.goto(f"{url}/datasets/{dataset_id}")
    expect(page.locator("#preprocess-buckets")).to_have_value(BUCKET)  # the training panel loaded
    page.select_option("#preprocess-model", "toy")
    page.screenshot(path=str(SCREENSHOTS / "avlora-dataset-training.png"), full_page=True)
    page.click("#preprocess-button")
    expect(page.locator("h1")).to_contain_text("Preprocess run")
    # the page polls itself until the worker is done
    expect(page.locator("#preprocess-status")).to_have_text("succeeded", timeout=180_000)
    row = page.locator("tr.clip-row", has_text="take1.mp4")
    expect(row.locator("code.bucket")).to_have_text(BUCKET)
    expect(row.locator("audio")).to_have_count(1)
    expect(row.locator("video")).to_have_count(2)  # original and decoded side by side
    expect(row.locator("canvas.waveform")).to_have_attribute("data-drawn", "1", timeout=20_000)
    page.screenshot(path=str(SCREENSHOTS / "avlora-preprocess.png"), full_page=True)
    page.click("#train-link")


def _fill_the_run_form(page) -> None:
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_contain_text("New training run")
    queue = page.locator("#queue-button")
    expect(queue).to_be_enabled()
    # the advanced editor: the whole config as YAML
    page.fill("#config-yaml", _tiny(page.locator("#config-yaml").input_value()))
    expect(page.locator("#f-rank")).to_have_value("4")  # the fields follow the YAML
    # a bad trigger: the linter says so as the person types, and queuing is blocked
    page.fill("#f-trigger", "ema voice")
    expect(page.locator("#lint-result .issue.error")).to_contain_text("data.trigger")
    expect(queue).to_be_disabled()
    page.fill("#f-trigger", TRIGGER)
    expect(page.locator("#lint-result .issue.error")).to_have_count(0)
    page.fill("#f-steps", str(STEPS))
    # the GPUs a run trains on together: one by default, never fewer
    expect(page.locator("#f-processes")).to_have_value("1")
    for field in ("f-model", "f-mode", "f-trigger", "f-steps", "f-processes", "f-lr", "f-rank", "f-interval",
                  "f-sample-size", "f-sample-steps", "f-prompts"):  # each label beside its own field
        label, control = page.locator(f"label[for={field}]").bounding_box(), page.locator(f"#{field}").bounding_box()
        assert label["x"] < control["x"] and abs(label["y"] - control["y"]) < 24, (field, label, control)
    page.fill("#f-processes", "0")
    expect(page.locator("#lint-result .issue.error")).to_contain_text("num_processes")
    expect(queue).to_be_disabled()
    page.fill("#f-processes", "1")
    expect(page.locator("#lint-result .issue.error")).to_have_count(0)
    page.fill("#f-interval", str(INTERVAL))
    page.fill("#f-sample-size", BUCKET)
    page.fill("#f-sample-steps", "2")
    expect(page.locator("#config-yaml")).to_contain_text("inference_steps: 2")  # the YAML follows the fields
    config = yaml.safe_load(page.locator("#config-yaml").input_value())
    assert config["optimization"]["steps"] == STEPS and config["checkpoints"]["interval"] == INTERVAL
    assert config["validation"]["video_dims"] == [64, 64, 9] and config["lora"]["rank"] == 4
    expect(queue).to_be_enabled()
    page.screenshot(path=str(SCREENSHOTS / "avlora-run-form.png"), full_page=True)
    queue.focus()
    page.keyboard.press("Enter")  # keyboard only


def _watch_the_run(page, url: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_contain_text("Run #")
    # the page opened before the worker finished: what follows arrives over server-sent events
    assert page.locator("#run-status").text_content() in ("queued", "running")
    checkpoints_at_open = page.locator("#checkpoints tbody tr").count()
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=240_000)
    expect(page.locator("#log")).to_contain_text(f"Finished at step {STEPS}")
    chart = page.locator("#loss-chart")
    expect(chart).to_have_attribute("data-points", str(STEPS), timeout=20_000)
    drawn = page.evaluate("""() => {
        const canvas = document.getElementById('loss-chart');
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i] > 0) painted++;
        return painted;
    }""")
    assert drawn > 500, f"the loss chart has only {drawn} painted pixels"
    expect(page.locator("#checkpoints tbody tr")).to_have_count(2)  # steps 3 and 6
    expect(page.locator("#checkpoints tr[data-step='6'] a", has_text="diffusers")).to_have_count(1)
    expect(page.locator("#samples li.sample")).to_have_count(3)  # lora at steps 0, 3 and 6
    expect(page.locator("#h-step")).to_have_text(str(STEPS))
    expect(page.locator("#resume-form")).to_be_hidden()
    _rows_arrived_live_as_a_reload_renders_them(page, checkpoints_at_open)
    page.check("#log-scale")
    expect(chart).to_have_attribute("data-points", str(STEPS))
    page.screenshot(path=str(SCREENSHOTS / "avlora-run.png"), full_page=True)

    page.click("nav[aria-label=Main] >> text=Jobs")
    expect(page.locator(".job-row").first).to_contain_text("succeeded")
    expect(page.locator("#jobs-table")).not_to_have_attribute("hx-trigger", "every 2s")
    page.screenshot(path=str(SCREENSHOTS / "avlora-jobs.png"), full_page=True)


def _rows_arrived_live_as_a_reload_renders_them(page, checkpoints_at_open: int) -> None:
    """The checkpoint rows and sample tiles swapped in from the event stream are, markup for markup,
    the ones the page renders after a reload; the reloaded page's stream replays every row and
    changes none of them."""
    live = page.evaluate(ROW_MARKUP)
    assert checkpoints_at_open < len(live["checkpoints"]) == 2, "no checkpoint row arrived over the stream"
    page.add_init_script(WATCH_ROWS)
    page.reload()
    page.wait_for_function("window.streamClosed === true", timeout=30_000)  # job.end: every row was replayed
    assert page.evaluate(ROW_MARKUP) == live
    assert page.evaluate("window.rowChanges") == 0
