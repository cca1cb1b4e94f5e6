"""Workers announce themselves (Postgres, Redis, real Celery workers): a GPU job queued while no
worker serves the gpu queue says so in its API answer, and a worker started later takes it."""

from __future__ import annotations

import pytest

from tests.integration.test_training_jobs import _captioned_dataset, _client, _config, _job, _wait, _wait_final
from tests.support import celery_worker

pytestmark = pytest.mark.integration

NO_GPU_WORKER = "No worker serves the gpu queue: start one with `avlora worker --queues gpu`."


def _live_workers() -> list[tuple[str, list[str]]]:
    from core.db import session_scope
    from core.services.workers import live_workers

    with session_scope() as session:
        return [(row.name, list(row.queues)) for row in live_workers(session)]


def test_a_gpu_job_without_a_gpu_worker_says_so_and_a_worker_started_later_takes_it(production_env, tmp_path,
                                                                                     tmp_path_factory):
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    client = _client()
    with celery_worker(production_env, tmp_path / "cpu.log", queues="cpu"):
        assert _wait(_live_workers, 10, "the cpu worker's announcement") == [("avlora-cpu@" + _host(), ["cpu"])]
        dataset_id = _captioned_dataset(client, media)
        started = client.post(f"/api/v1/datasets/{dataset_id}/preprocess", json={"model": "toy"})
        assert started.status_code == 202, started.text
        waiting = _job(client, started.json()["job_id"])
        assert waiting["status"] == "queued" and waiting["waiting_for"] == NO_GPU_WORKER

        with celery_worker(production_env, tmp_path / "gpu1.log", queues="gpu"):
            assert _wait_final(client, waiting["id"])["status"] == "succeeded"
        # the worker stopped cleanly: it is gone at once, not after a heartbeat timeout
        assert [queues for _name, queues in _live_workers()] == [["cpu"]]

        created = client.post("/api/v1/runs", json={"dataset_id": dataset_id,
                                                    "config": _config(client, dataset_id, steps=2, interval=2)})
        assert created.status_code == 201, created.text
        train = _job(client, created.json()["job_id"])
        assert train["status"] == "queued" and train["waiting_for"] == NO_GPU_WORKER
        assert NO_GPU_WORKER in client.get("/api/v1/jobs?kind=train").text

        with celery_worker(production_env, tmp_path / "gpu2.log", queues="gpu"):
            _wait(lambda: _job(client, train["id"])["status"] != "queued", 60, "the new worker to take the run")
            assert _job(client, train["id"])["waiting_for"] is None
            assert _wait_final(client, train["id"], timeout=180)["status"] == "succeeded"


def _host() -> str:
    import socket

    return socket.gethostname()
