"""`avlora serve` on the embedded defaults (SQLite, file broker) keeps its worker alive: the worker
killed mid-run is started again within seconds, the run becomes interrupted, and a resume asked
through the API (as a script would) finishes it with every checkpoint exactly once."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.test_training_jobs import _config, _job, _preprocessed_dataset, _wait, _wait_final
from tests.support import celery_processes_of, web_server

pytestmark = pytest.mark.integration


def _announced_pids() -> set[int]:
    """Pids of the workers that announced themselves and beat (read from the studio's database)."""
    from core.db import session_scope
    from core.services.workers import live_workers

    with session_scope() as session:
        return {row.pid for row in live_workers(session)}


def _run(client: httpx.Client, run_id: int) -> dict:
    return client.get(f"/api/v1/runs/{run_id}").json()


def _start_run(client: httpx.Client, dataset_id: int, steps: int, interval: int) -> dict:
    """A toy run without validation samples (what is tested here is the checkpoints)."""
    config = _config(client, dataset_id, steps, interval)
    config["validation"]["at_checkpoints"] = False
    created = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config})
    assert created.status_code == 201, created.text
    return created.json()


def test_a_killed_embedded_worker_is_restarted_and_the_run_resumes(studio_env, tmp_path, tmp_path_factory):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    # a short heartbeat timeout so the dead worker's run is noticed quickly (not so short that a busy
    # machine starving a heartbeat thread for a few seconds reads as a death)
    env = {**studio_env, "AVLORA_HEARTBEAT_TIMEOUT_S": "10", "AVLORA_SWEEP_INTERVAL_S": "0.5"}
    data_dir = Path(env["AVLORA_DATA_DIR"])
    log = tmp_path / "serve.log"
    steps, interval = 80, 10  # long enough that the run is still going well after its first checkpoint
    with web_server(env, log, with_worker=True) as url:
        token = (data_dir / "api_token").read_text().strip()
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        dataset_id = _preprocessed_dataset(client, media)
        run = _start_run(client, dataset_id, steps=steps, interval=interval)
        _wait(lambda: _run(client, run["id"])["checkpoints"], 120, "a checkpoint", interval=0.5)
        assert _job(client, run["job_id"])["status"] == "running"
        (first,) = _announced_pids()
        os.killpg(first, signal.SIGKILL)  # the worker and its pool processes die at once

        killed = time.monotonic()
        _wait(lambda: [p for p in celery_processes_of(str(data_dir)) if os.getpgid(p) == p and p != first],
              5, "the studio to start its worker again")
        interrupted = _wait_final(client, run["job_id"], timeout=60)
        assert interrupted["status"] == "interrupted" and "heartbeat" in interrupted["error"]
        _wait(lambda: _announced_pids() - {first}, 90, "the new worker to be up")
        restarted_s = time.monotonic() - killed
        assert "the studio's worker ended (killed by SIGKILL)" in log.read_text()

        resumed = client.post(f"/api/v1/jobs/{run['job_id']}/resume")
        assert resumed.status_code == 201, resumed.text
        job = _wait_final(client, resumed.json()["id"], timeout=300)
        assert job["status"] == "succeeded", job
        done = _run(client, run["id"])
    print(f"worker up again {restarted_s:.1f} s after the kill")

    assert done["status"] == "succeeded"
    assert [c["step"] for c in done["checkpoints"]] == list(range(interval, steps + 1, interval))
    assert [m["step"] for m in done["metrics"]] == list(range(1, steps + 1))
    on_disk = sorted((data_dir / f"runs/{run['id']}/checkpoints").glob("lora_weights_step_*[0-9].safetensors"))
    assert len(on_disk) == len(done["checkpoints"])
