""""Checkpoint now" and "sample now" through a real Celery worker on Postgres and Redis (toy model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_training_jobs import (
    _client,
    _job,
    _preprocessed_dataset,
    _rows,
    _start_run,
    _wait,
    _wait_final,
)
from tests.support import celery_worker

pytestmark = pytest.mark.integration


def test_checkpoint_now_and_sample_now_on_a_worker(production_env, tmp_path, tmp_path_factory):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    data_dir = Path(production_env["AVLORA_DATA_DIR"])
    client = _client()
    with celery_worker(production_env, tmp_path / "worker.log"):
        dataset_id = _preprocessed_dataset(client, media)
        run = _start_run(client, dataset_id, steps=5000, interval=2500)
        job_url = f"/api/v1/jobs/{run['job_id']}"
        _wait(lambda: _job(client, run["job_id"])["step"] >= 2, 60, "training to reach step 2")

        assert client.post(f"{job_url}/sample-now").status_code == 202
        sampled = _wait(lambda: [s for s in _rows(run["id"])[2] if s[0] > 0], 30, "samples asked for")
        assert _wait(lambda: client.get(job_url).json()["requests"] == {}, 10, "the sample request to be cleared")
        assert _rows(run["id"])[0] == []  # sampling wrote no checkpoint

        assert client.post(f"{job_url}/checkpoint-now").status_code == 202
        (step, files), = _wait(lambda: _rows(run["id"])[0], 30, "the checkpoint asked for")
        assert step > sampled[0][0] and step < 2500
        assert (data_dir / files["official"]).is_file() and (data_dir / files["state"]).is_file()
        _wait(lambda: any(s[0] == step for s in _rows(run["id"])[2]), 30, "the checkpoint's samples")

        assert client.post(f"{job_url}/cancel").json()["status"] == "cancelling"
        job = _wait_final(client, run["job_id"], timeout=15)
    assert job["status"] == "cancelled" and job["requests"] == {}
    refused = client.post(f"{job_url}/checkpoint-now")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "not_running_training"
