"""``avlora serve`` as a user starts it: embedded defaults (SQLite, file broker, its own worker)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.media_factory import ClipSpec, write_clip
from tests.support import ROOT, celery_processes_of, free_port, web_server

pytestmark = pytest.mark.integration

PROBE_TIMEOUT_S = 180


def wait_for_clip(client: httpx.Client, clip_id: int) -> dict:
    """Poll the clip until the worker has probed it (ready or rejected)."""
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    while time.monotonic() < deadline:
        clip = client.get(f"/api/v1/clips/{clip_id}").json()
        if clip["status"] in ("ready", "rejected"):
            return clip
        time.sleep(0.5)
    raise AssertionError(f"clip {clip_id} still {clip['status']!r} after {PROBE_TIMEOUT_S}s")


def test_serve_starts_serves_a_page_and_its_worker_probes_an_upload(studio_env, tmp_path):
    log = tmp_path / "serve.log"
    with web_server(studio_env, log, with_worker=True) as url:
        assert f"AV-LoRA Studio: {url}/" in log.read_text()  # the URL a user opens
        page = httpx.get(f"{url}/", follow_redirects=True)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert (Path(studio_env["AVLORA_DATA_DIR"]) / "studio.sqlite3").exists()  # migrated

        token = (Path(studio_env["AVLORA_DATA_DIR"]) / "api_token").read_text().strip()
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
            created = client.post("/api/v1/datasets", json={"name": "Serve check", "trigger": "ema_voice"})
            assert created.status_code == 201, created.text
            source = write_clip(tmp_path / "talk.mp4", ClipSpec(duration=4.0))
            with source.open("rb") as fh:
                uploaded = client.post(f"/api/v1/datasets/{created.json()['id']}/clips",
                                       files=[("files", ("talk.mp4", fh, "video/mp4"))])
            assert uploaded.status_code == 201, uploaded.text
            clip = wait_for_clip(client, uploaded.json()[0]["id"])
        assert celery_processes_of(studio_env["AVLORA_DATA_DIR"])  # its embedded worker
    # Stopping the studio (SIGTERM) stops its worker too: nothing is left running.
    deadline = time.monotonic() + 20
    while celery_processes_of(studio_env["AVLORA_DATA_DIR"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert celery_processes_of(studio_env["AVLORA_DATA_DIR"]) == []
    output = log.read_text()  # a clean stop reads clean: no error about the worker the studio stopped
    assert "worker: Warm shutdown" in output
    assert "ERROR" not in output and "SIGTERM" not in output and "ended (" not in output

    assert clip["probe"]["duration"] == pytest.approx(4.0, abs=0.1)
    assert clip["facts"]["frames"] == 100 and clip["facts"]["has_audio"]
    codes = {f["code"] for f in clip["findings"]}
    assert "low_resolution" in codes  # 64x64 is smaller than the default 512x512 buckets
    assert "no_audio_track" not in codes


def test_serve_with_a_password_asks_for_it(studio_env, tmp_path):
    env = {**studio_env, "AVLORA_PASSWORD": "serve-test-password"}
    with web_server(env, tmp_path / "serve.log") as url, httpx.Client(base_url=url) as client:
        first = client.get("/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/login?next=%2F"
        assert client.get("/api/v1/datasets").status_code == 401
        form = client.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        signed_in = client.post("/login", data={"csrf_token": token, "password": "serve-test-password",
                                                "next": "/"}, follow_redirects=False)
        assert signed_in.status_code == 303
        assert client.get("/api/v1/datasets").status_code == 200


def test_serve_refuses_a_public_host_without_a_password(studio_env):
    result = subprocess.run(
        [sys.executable, "-m", "avlora.cli", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=ROOT, env={**os.environ, **studio_env}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "Refusing to listen on '0.0.0.0' without a password" in result.stderr
    assert "AVLORA_PASSWORD" in result.stderr
    assert not (Path(studio_env["AVLORA_DATA_DIR"]) / "studio.sqlite3").exists()
