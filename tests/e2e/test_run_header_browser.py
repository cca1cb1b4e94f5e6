"""The run page's live header in a real browser (Debian chromium through Playwright): on a CPU run it
says "Device: CPU (no GPU)" and names the memory for what it is, and the ETA keeps counting down
between two steps, while validation samples render and no new progress arrives (issue 19)."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import web_server

pytestmark = pytest.mark.e2e
ROWS_REPLAYED = "() => document.getElementById('loss-chart').getAttribute('data-points') === '1'"


def _seconds(text: str) -> int:
    minutes, seconds = re.fullmatch(r"(?:(\d+) min )?(\d+) s", text).groups()
    return int(minutes or 0) * 60 + int(seconds)


def test_a_cpu_runs_header_names_the_device_and_its_eta_counts_down(studio_env, migrated_env, tmp_path, browser):
    from playwright.sync_api import expect

    from core.db import session_scope
    from core.models import Job, Metric
    from tests.unit.web.compare_support import seed_run_with_job

    run_id, job_id = seed_run_with_job("running")
    written = datetime.now(UTC) - timedelta(seconds=60)
    with session_scope() as session:  # the worker wrote step 2 (and its ETA) a minute ago, then began sampling
        job = session.get(Job, job_id)
        job.gpu, job.step, job.eta_s, job.heartbeat_at = "cpu", 2, 600.0, datetime.now(UTC)
        session.add(Metric(run_id=run_id, step=2, loss=1.0, loss_video=0.6, loss_audio=0.4, lr=1e-4, grad_norm=1.0,
                           step_time=0.5, gpu_mem=300 << 20, created_at=written))

    with web_server(studio_env, tmp_path / "server.log") as url:
        page = browser.new_page()
        page.goto(f"{url}/runs/{run_id}")
        expect(page.locator("#stream-state")).to_have_text("live")
        page.wait_for_function(ROWS_REPLAYED)  # step 2's metric came in over the stream
        expect(page.locator("#h-gpu-label")).to_have_text("Device")
        expect(page.locator("#h-gpu")).to_have_text("CPU (no GPU)")
        expect(page.locator("#h-mem-label")).to_have_text("Memory (process peak RSS)")
        first = _seconds(page.locator("#h-eta").text_content())
        expected = 600 - (datetime.now(UTC) - written).total_seconds()
        assert abs(first - expected) <= 2  # counted from the metric's time, not from when the page opened
        started = time.monotonic()  # it moves on with no new progress from the worker, at the clock's pace
        later = first
        while later > first - 2 and time.monotonic() - started < 8:
            page.wait_for_timeout(250)
            later = _seconds(page.locator("#h-eta").text_content())
        elapsed = time.monotonic() - started
        assert first - elapsed - 1.5 <= later <= first - 2, (first, later, elapsed)
