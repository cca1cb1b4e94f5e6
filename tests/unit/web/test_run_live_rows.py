"""The run page renders its checkpoint rows and sample tiles once: one partial each, used by the
page's first render and sent live, rendered, over the job's events (``?html=true``: events
``run.checkpoint.html`` and ``run.sample.html`` beside the JSON ones, then ``job.end``). The pages'
scripts build no rows, export links are written in one place, and one helper posts with the CSRF token."""

from __future__ import annotations

import json
import re

from app.templating import STATIC_DIR, TEMPLATES_DIR
from tests.unit.web.compare_support import seed_run_with_job

PARTIALS = ("partials/run_checkpoint_row.html", "partials/run_sample_tile.html", "partials/export_links.html")


def _events(text: str) -> list[dict]:
    """SSE text -> [{"id", "event", "data"}], the data lines joined as EventSource joins them."""
    events = []
    for block in text.strip().split("\n\n"):
        event: dict = {}
        for line in block.split("\n"):
            key, _, value = line.partition(": ")
            if key == "data":
                event["data"] = f"{event['data']}\n{value}" if "data" in event else value
            elif key in ("id", "event"):
                event[key] = value
        if "event" in event:
            events.append(event)
    return events




def _page_rows(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The run page's checkpoint rows by step and sample tiles by id, as its HTML writes them."""
    rows = {m.group(1): m.group(0) for m in re.finditer(r'<tr data-step="(\d+)">.*?</tr>', page, re.S)}
    tiles = {m.group(1): m.group(0) for m in re.finditer(r'<li class="sample" data-id="(\d+)">.*?</li>', page, re.S)}
    return rows, tiles


def test_the_page_feed_sends_each_row_as_the_page_renders_it(api, browser_client):
    run_id, job_id = seed_run_with_job("succeeded", best_step=4)
    rows, tiles = _page_rows(browser_client.get(f"/runs/{run_id}").text)
    assert set(rows) == {"2", "4"} and len(tiles) == 6  # base at step 0, lora at 2 and 4; two prompts each

    events = _events(api.get(f"/api/v1/jobs/{job_id}/events?html=true").text)
    sent = {"run.checkpoint": {}, "run.sample": {}}  # row key -> the HTML sent for it
    for event, html in zip(events, events[1:], strict=False):
        if event["event"] in sent:  # the JSON event, then its row as HTML with the same id
            assert html["event"] == event["event"] + ".html" and html["id"] == event["id"]
            row = json.loads(event["data"])
            key = row["step"] if event["event"] == "run.checkpoint" else row["id"]
            sent[event["event"]][str(key)] = html["data"]
    sent_rows = sent["run.checkpoint"]
    assert sent_rows == rows and sent["run.sample"] == tiles  # byte for byte the page's own markup
    export = f"/api/v1/runs/{run_id}/checkpoints/4/export"
    assert f'href="{export}?layout=comfy&amp;modules=all"' in sent_rows["4"] and "/export" not in sent_rows["2"]
    assert "removed (keep_last_n)" in sent_rows["2"]
    assert events[-1]["event"] == "job.end" and json.loads(events[-1]["data"]) == {"id": job_id}

    plain = [e["event"] for e in _events(api.get(f"/api/v1/jobs/{job_id}/events").text)]
    assert "run.checkpoint" in plain and "run.sample" in plain  # the JSON stream of scripts is unchanged
    assert not [name for name in plain if name.endswith(".html") or name == "job.end"]


def test_a_new_checkpoint_arrives_as_the_row_a_reload_shows(api, browser_client):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import TrainingRun
    from core.services import run_records

    run_id, job_id = seed_run_with_job("succeeded", best_step=None)
    last_id = _events(api.get(f"/api/v1/jobs/{job_id}/events?html=true").text)[-1]["id"]
    official = f"runs/{run_id}/checkpoints/lora_weights_step_00006.safetensors"
    (get_settings().data_dir / official).write_bytes(b"not read by the page")
    with session_scope() as session:  # written as the worker writes it; the person then marks it best
        run_records.record_checkpoint(session, run_id, 6, {"official": official}, {"video": 8, "audio": 4})
        session.get(TrainingRun, run_id).best_checkpoint_step = 6
        session.commit()

    events = _events(api.get(f"/api/v1/jobs/{job_id}/events?html=true", headers={"Last-Event-ID": last_id}).text)
    assert [e["event"] for e in events] == ["job.progress", "run.checkpoint", "run.checkpoint.html", "job.status",
                                            "job.end"]
    rows, _ = _page_rows(browser_client.get(f"/runs/{run_id}").text)
    assert events[2]["data"] == rows["6"]
    assert "audio: 4, video: 8" in rows["6"]
    assert f"/api/v1/runs/{run_id}/checkpoints/6/export?layout=diffusers" in rows["6"]  # now the best one


def test_an_html_event_is_one_data_line_per_line_of_text():
    from app.views.events import ServerEvent

    wire = ServerEvent("run.sample.html", "<li>\r\n a\rb\n</li>", "l0.m0.c0.s1").encode()
    assert wire == "id: l0.m0.c0.s1\nevent: run.sample.html\ndata: <li>\ndata:  a\ndata: b\ndata: </li>\n\n"
    assert ServerEvent("job.end", {"id": 3}).encode() == 'event: job.end\ndata: {"id":3}\n\n'


def test_the_run_page_uses_the_vendored_sse_extension_of_htmx():
    vendored = sorted(p.name for p in (STATIC_DIR / "vendor").glob("*.js"))
    htmx = [name for name in vendored if re.fullmatch(r"htmx-\d+\.\d+\.\d+\.min\.js", name)]
    sse = [name for name in vendored if re.fullmatch(r"htmx-ext-sse-\d+\.\d+\.\d+\.min\.js", name)]
    assert len(htmx) == 1 and len(sse) == 1 and htmx[0].split("-")[1][0] == sse[0].split("-")[3][0]  # same major
    assert 'htmx.defineExtension("sse"' in (STATIC_DIR / "vendor" / sse[0]).read_text()
    page = (TEMPLATES_DIR / "run.html").read_text()
    assert "htmx_sse_js" in page and 'hx-ext="sse"' in page and 'sse-close="job.end"' in page
    assert 'sse-swap="run.checkpoint.html"' in page and 'sse-swap="run.sample.html"' in page
    assert "https://" not in page  # never a CDN


def test_scripts_build_no_rows_and_post_through_one_helper():
    scripts = {p.name: p.read_text() for p in (STATIC_DIR / "js").glob("*.js")}
    assert not re.search(r'createElement\("(tr|td|li|a|br|video|audio)"\)', scripts["run.js"])
    assert "/export" not in scripts["run.js"] and "key-report" not in scripts["run.js"]
    for name, text in scripts.items():  # the CSRF token is read, and JSON posted, in studio.js only
        if name != "studio.js":
            assert 'meta[name="csrf-token"]' not in text and 'method: "POST"' not in text, name
    assert "function postJson(url, body)" in scripts["studio.js"]


def test_export_links_are_written_in_one_place():
    written = []
    for path in list(TEMPLATES_DIR.rglob("*.html")) + list((STATIC_DIR / "js").glob("*.js")):
        if re.search(r"checkpoints/.{0,40}/export", path.read_text()):
            written.append(path.relative_to(TEMPLATES_DIR.parent).as_posix())
    assert written == ["templates/partials/export_links.html"]


def test_the_partials_have_no_inline_scripts():
    for name in PARTIALS:
        text = (TEMPLATES_DIR / name).read_text()
        assert "<script" not in text and not re.search(r"\son[a-z]+=", text), name
