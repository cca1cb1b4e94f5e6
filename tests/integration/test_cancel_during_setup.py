"""Cancel is honoured within seconds while a training job sets up, on a real Celery worker.

Before its first step a run loads the model, encodes its validation prompts and samples the
base model at step 0; on a real model that takes minutes, and a cancel used to wait for it all.
Here the toy run is given many validation prompts and sampling steps (the options a person sets
in the run form), so set-up lasts long enough to be cancelled in the middle of it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.files import is_temporary
from tests.integration.test_training_jobs import _client, _config, _job, _preprocessed_dataset, _rows, _wait
from tests.support import celery_worker

pytestmark = pytest.mark.integration

SLOW_SETUP_PROMPTS = 12  # each is encoded, then sampled at step 0, before the first step
SLOW_SETUP_SAMPLING_STEPS = 200  # set-up then lasts minutes here; before the fix, so did the cancel


def _slow_setup_run(client, dataset_id: int) -> dict:
    config = _config(client, dataset_id, steps=50, interval=25)
    config["validation"].update(
        inference_steps=SLOW_SETUP_SAMPLING_STEPS, variants=["lora", "base"],
        prompts=[f"{{trigger}}, a woman speaks calmly, take {n}: hello there" for n in range(SLOW_SETUP_PROMPTS)])
    created = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config})
    assert created.status_code == 201, created.text
    return created.json()


def test_a_training_job_cancelled_during_set_up_stops_within_seconds(production_env, tmp_path, tmp_path_factory):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    data_dir = Path(production_env["AVLORA_DATA_DIR"])
    client = _client()
    with celery_worker(production_env, tmp_path / "worker.log"):
        dataset_id = _preprocessed_dataset(client, media)
        run = _slow_setup_run(client, dataset_id)
        _wait(lambda: _job(client, run["job_id"])["status"] == "running", 60, "the training job to start")
        time.sleep(1.5)  # well inside set-up: loading, prompt encoding, step-0 samples
        assert _job(client, run["job_id"])["step"] == 0
        asked = time.monotonic()
        assert client.post(f"/api/v1/jobs/{run['job_id']}/cancel").json()["status"] == "cancelling"
        job = _wait(lambda: (j := _job(client, run["job_id"]))["status"] != "cancelling" and j, 20,
                    "the cancel to be honoured")
        waited = time.monotonic() - asked
        assert job["status"] == "cancelled" and job["error"] is None, job
        assert waited < 8, f"cancel took {waited:.1f}s"
        assert client.get(f"/api/v1/runs/{run['id']}").json()["status"] == "cancelled"
        checkpoints, metrics, _samples = _rows(run["id"])
        assert checkpoints == [] and metrics == []
        run_dir = data_dir / f"runs/{run['id']}"
        assert not [p for p in run_dir.rglob("*") if is_temporary(p)]  # no half-written sample
        log = [line["text"] for line in client.get(f"/api/v1/jobs/{run['job_id']}/log").json()]
        # interrupted in the middle of loading or encoding, or stopped by the trainer between two
        # of the step-0 samples: either way before any step, and within seconds
        assert any("Cancelled during set-up" in text or "Cancelled at step 0" in text for text in log), log

        # the same worker process serves the next run to the end (one step, no samples: quick)
        config = _config(client, dataset_id, steps=1, interval=1)
        config["validation"].update(at_checkpoints=False, interval=None)
        short = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config}).json()
        job = _wait(lambda: (j := _job(client, short["job_id"]))["status"] in ("succeeded", "failed") and j,
                    90, "the next run to finish")
        assert job["status"] == "succeeded", job
