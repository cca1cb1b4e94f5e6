"""Upload -> probe job on a real Celery worker (Redis broker) -> findings in Postgres."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.support import celery_worker

pytestmark = pytest.mark.integration


def _wait_for_status(client: TestClient, clip_id: int, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        clip = client.get(f"/api/v1/clips/{clip_id}").json()
        if clip["status"] in ("ready", "rejected"):
            return clip
        time.sleep(0.5)
    raise AssertionError(f"clip {clip_id} still {clip['status']} after {timeout}s")


def test_upload_is_probed_by_a_real_worker(production_env, tmp_path, tmp_path_factory):
    from app.main import create_app
    from app.security import api_token
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {api_token()}"
    dataset = client.post("/api/v1/datasets", json={"name": "Ema", "trigger": "ema_voice"}).json()
    files = [("files", ("talk.mp4", media.talking_clip().read_bytes(), "video/mp4")),
             ("files", ("mute.mp4", media.clip(audio="none").read_bytes(), "video/mp4"))]
    with celery_worker(production_env, tmp_path / "worker.log", queues="cpu"):
        entries = client.post(f"/api/v1/datasets/{dataset['id']}/clips", files=files).json()
        talk, mute = (_wait_for_status(client, e["id"]) for e in entries)

    assert talk["status"] == "ready"
    assert "missing_transcript" in {f["code"] for f in talk["findings"]}
    assert talk["analysis"]["audio"]["speech_ratio"] > 0.25
    assert mute["status"] == "rejected" and "no_audio_track" in {f["code"] for f in mute["findings"]}
    job = client.get(f"/api/v1/jobs/{talk['job_id']}").json()
    assert job["status"] == "succeeded" and job["worker"]

    # the rows really are in Postgres
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Clip

    with session_scope() as session:
        assert session.get_bind().dialect.name == "postgresql"
        rows = {c.original_name: c for c in session.scalars(select(Clip))}
        assert rows["mute.mp4"].findings[0]["code"] == "no_audio_track"
        assert rows["talk.mp4"].probe["video"]["frame_count"] == 100
