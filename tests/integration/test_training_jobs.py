"""Training on real services: Postgres, Redis and Celery worker processes, with the toy model.

Preprocess -> a short run whose metrics, checkpoints and samples land in the database and on
disk, with a worker log free of noise; cancel a running training; "checkpoint now" and "sample
now" on a running training; cancel a training while it sets up (one worker and one preprocessed
dataset serve all four: a worker, a probe and a preprocess cost about 20 s each time); kill -9
the worker mid-run, let the sweeper mark the job interrupted, resume on a new worker and finish
with every checkpoint exactly once.
"""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.support import celery_worker, worker_log_noise

pytestmark = pytest.mark.integration

FINAL = ("succeeded", "failed", "cancelled", "interrupted")


def _client() -> TestClient:
    from app.main import create_app
    from app.security import api_token

    client = TestClient(create_app())
    client.headers["Authorization"] = f"Bearer {api_token()}"
    return client


def _wait(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def _job(client: TestClient, job_id: int) -> dict:
    return client.get(f"/api/v1/jobs/{job_id}").json()


def _wait_final(client: TestClient, job_id: int, timeout: float = 120) -> dict:
    return _wait(lambda: (job := _job(client, job_id))["status"] in FINAL and job, timeout, f"job {job_id} ending")


def _captioned_dataset(client: TestClient, media) -> int:
    """A dataset with one analysed, captioned talking clip."""
    dataset = client.post("/api/v1/datasets", json={"name": "Ema", "trigger": "ema_voice",
                                                    "buckets": "64x64x9"}).json()
    (entry,) = client.post(f"/api/v1/datasets/{dataset['id']}/clips",
                           files=[("files", ("take.mp4", media.talking_clip().read_bytes(), "video/mp4"))]).json()
    assert _wait_final(client, entry["job_id"])["status"] == "succeeded"
    client.put(f"/api/v1/clips/{entry['id']}/caption", json={"visual": "a woman looks at the camera",
                                                              "transcript": "Hello there, how are you today?"})
    return dataset["id"]


def _preprocessed_dataset(client: TestClient, media) -> int:
    """:func:`_captioned_dataset`, preprocessed by the worker."""
    dataset_id = _captioned_dataset(client, media)
    started = client.post(f"/api/v1/datasets/{dataset_id}/preprocess", json={"model": "toy"})
    assert started.status_code == 202, started.text
    job = _wait_final(client, started.json()["job_id"])
    assert job["status"] == "succeeded", job
    return dataset_id


def _config(client: TestClient, dataset_id: int, steps: int, interval: int) -> dict:
    config = client.get(f"/api/v1/presets/sanity?model=toy&dataset_id={dataset_id}").json()
    config["lora"].update(rank=4, alpha=4)
    config["optimization"].update(steps=steps, gradient_checkpointing=False)
    config["checkpoints"]["interval"] = interval
    config["validation"].update(video_dims=[64, 64, 9], inference_steps=2, variants=["lora"],
                                prompts=["{trigger}, a woman speaks calmly: hello there"])
    return config


def _start_run(client: TestClient, dataset_id: int, steps: int, interval: int) -> dict:
    created = client.post("/api/v1/runs", json={"dataset_id": dataset_id,
                                                "config": _config(client, dataset_id, steps, interval)})
    assert created.status_code == 201, created.text
    return created.json()


def _rows(run_id: int):
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Checkpoint, Metric, Sample

    with session_scope() as session:
        assert session.get_bind().dialect.name == "postgresql"
        checkpoints = [(c.step, dict(c.files)) for c in session.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run_id).order_by(Checkpoint.step))]
        metrics = list(session.scalars(select(Metric.step).where(Metric.run_id == run_id).order_by(Metric.step)))
        samples = [(s.step, s.variant, s.mp4, s.wav) for s in session.scalars(
            select(Sample).where(Sample.run_id == run_id).order_by(Sample.step))]
    return checkpoints, metrics, samples


def test_preprocess_train_cancel_and_job_requests_on_a_real_worker(production_env, tmp_path, tmp_path_factory):
    from tests.integration.worker_scenarios import (
        cancel_during_set_up,
        checkpoint_now_and_sample_now,
        two_processes_cancel_and_kill,
    )
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    data_dir = Path(production_env["AVLORA_DATA_DIR"])
    client = _client()
    with celery_worker(production_env, tmp_path / "worker.log"):
        dataset_id = _preprocessed_dataset(client, media)
        short = _start_run(client, dataset_id, steps=4, interval=2)
        job = _wait_final(client, short["job_id"])
        assert job["status"] == "succeeded", job
        checkpoints, metrics, samples = _rows(short["id"])
        assert [step for step, _ in checkpoints] == [2, 4]
        assert metrics == [1, 2, 3, 4]
        assert [(step, variant) for step, variant, *_ in samples] == [(0, "lora"), (2, "lora"), (4, "lora")]
        for _step, files in checkpoints:
            assert (data_dir / files["official"]).is_file() and (data_dir / files["diffusers"]).is_file()
        for *_, mp4, wav in samples:
            assert (data_dir / mp4).stat().st_size > 0 and (data_dir / wav).stat().st_size > 0
        listed = {j["id"]: j for j in client.get("/api/v1/jobs?kind=train").json()}
        assert listed[short["job_id"]]["gpu"] == "cpu" and listed[short["job_id"]]["worker"]

        long = _start_run(client, dataset_id, steps=5000, interval=2500)
        _wait(lambda: _job(client, long["job_id"])["step"] >= 3, 60, "training to reach step 3")
        asked = time.monotonic()
        assert client.post(f"/api/v1/jobs/{long['job_id']}/cancel").json()["status"] == "cancelling"
        job = _wait_final(client, long["job_id"], timeout=15)
        assert job["status"] == "cancelled" and time.monotonic() - asked < 10
        assert job["step"] < 5000
        checkpoints, _, _ = _rows(long["id"])
        assert [step for step, _ in checkpoints] == [job["step"]]  # saved where it stopped: resume continues

        checkpoint_now_and_sample_now(client, data_dir, dataset_id)
        two_processes_cancel_and_kill(client, data_dir, dataset_id)
        cancel_during_set_up(client, data_dir, dataset_id)
    # the worker's log through all this says what it did, without noise nobody can act on
    log = (tmp_path / "worker.log").read_text()
    assert "ready." in log and "succeeded in" in log
    assert not worker_log_noise(log), f"noise in the worker log: {worker_log_noise(log)}"


def test_a_killed_worker_is_interrupted_and_resumed_without_losing_checkpoints(production_env, tmp_path,
                                                                                tmp_path_factory):
    from core.db import session_scope
    from core.services.sweeper import sweep
    from tests.media_factory import MediaFactory

    media = MediaFactory(tmp_path_factory.mktemp("media"))
    data_dir = Path(production_env["AVLORA_DATA_DIR"])
    client = _client()
    steps, interval = 100, 20  # killed after two checkpoints: 60 steps and 3 samples still to go
    with celery_worker(production_env, tmp_path / "worker1.log") as worker:
        dataset_id = _preprocessed_dataset(client, media)
        run = _start_run(client, dataset_id, steps=steps, interval=interval)
        _wait(lambda: len(_rows(run["id"])[0]) >= 2, 90, "two checkpoints")
        assert _job(client, run["job_id"])["status"] == "running"
        os.killpg(worker.pid, signal.SIGKILL)  # the worker and its pool child die at once

    assert _job(client, run["job_id"])["status"] == "running"  # nobody told the database
    time.sleep(2.5)
    with session_scope() as session:
        report = sweep(session, heartbeat_timeout_s=2, redispatch_after_s=3600)
    assert report.interrupted == [run["job_id"]]
    interrupted = _job(client, run["job_id"])
    assert interrupted["status"] == "interrupted" and "heartbeat" in interrupted["error"]
    states = (data_dir / f"runs/{run['id']}/checkpoints").glob("training_state_step_*.pt")
    last_checkpoint = max(int(p.stem.rsplit("_", 1)[1]) for p in states)  # a row may lag its files

    resumed = client.post(f"/api/v1/jobs/{run['job_id']}/resume")
    assert resumed.status_code == 201, resumed.text
    with celery_worker(production_env, tmp_path / "worker2.log"):
        job = _wait_final(client, resumed.json()["id"], timeout=180)
    assert job["status"] == "succeeded", job

    checkpoints, metrics, samples = _rows(run["id"])
    assert [step for step, _ in checkpoints] == list(range(interval, steps + 1, interval))
    for _step, files in checkpoints:
        assert (data_dir / files["official"]).is_file() and (data_dir / files["state"]).is_file()
    on_disk = sorted((data_dir / f"runs/{run['id']}/checkpoints").glob("lora_weights_step_*[0-9].safetensors"))
    assert len(on_disk) == len(checkpoints)
    assert metrics == list(range(1, steps + 1))
    assert len(samples) == len({(s[0], s[1]) for s in samples}) == steps // interval + 1
    log = [line["text"] for line in client.get(f"/api/v1/jobs/{resumed.json()['id']}/log").json()]
    assert f"Resuming from the checkpoint at step {last_checkpoint}" in log[0]
    assert client.get(f"/api/v1/runs/{run['id']}").json()["status"] == "succeeded"


def test_the_web_process_sweeps_dead_and_lost_jobs(production_env, tmp_path):
    """`avlora serve` runs the sweeper: a dead worker's job becomes interrupted, a task lost with
    the broker's data is sent again and a worker then runs it."""
    from datetime import datetime, timedelta

    import redis

    from core.db import session_scope
    from core.models import Job
    from core.services.job_queue import queue_job
    from tests.support import web_server

    old = datetime.now(UTC) - timedelta(minutes=10)
    with session_scope() as session:
        dead = Job(kind="train", queue="gpu", status="running", params={}, heartbeat_at=old, started_at=old)
        session.add(dead)
        session.flush()
        dead_id = dead.id
    with session_scope() as session:
        lost = queue_job(session, "probe_clip", "cpu", {"clip_id": 424242})
        lost_id, first_task = lost.id, lost.celery_id
    broker = redis.Redis.from_url(production_env["AVLORA_BROKER_URL"])
    assert broker.llen("cpu") == 1
    broker.flushdb()  # the broker restarts without its data
    broker.close()

    env = {**production_env, "AVLORA_SWEEP_INTERVAL_S": "0.3", "AVLORA_REDISPATCH_AFTER_S": "1",
           "AVLORA_HEARTBEAT_TIMEOUT_S": "5"}

    def job(job_id):
        with session_scope() as session:
            row = session.get(Job, job_id)
            return row.status, row.celery_id, row.error

    with web_server(env, tmp_path / "web.log"):
        _wait(lambda: job(dead_id)[0] == "interrupted", 20, "the dead job to be marked interrupted")
        _wait(lambda: job(lost_id)[1] != first_task, 20, "the lost task to be sent again")
    with celery_worker(env, tmp_path / "worker.log", queues="cpu"):
        _wait(lambda: job(lost_id)[0] == "failed", 60, "a worker to run the re-sent job", interval=0.3)
    assert "no longer exists" in job(lost_id)[2]  # it really ran: the clip it names was never there
