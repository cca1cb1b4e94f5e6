"""Jobs: list with queue positions, resume, live server-sent events, and the crash sweeper (SQLite)."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def _job(kind="train", queue="gpu", status="queued", **fields):
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        job = Job(kind=kind, queue=queue, status=status, params=fields.pop("params", {}), **fields)
        session.add(job)
        session.flush()
        return job.id


def _set_job(job_id, **fields):
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        job = session.get(Job, job_id)
        for key, value in fields.items():
            setattr(job, key, value)


def _parse_sse(text: str) -> list[dict]:
    """SSE text -> [{"id", "event", "data"}] (comments kept as {"comment": ...})."""
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        event: dict = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                event["comment"] = line[1:].strip()
            elif ": " in line:
                key, value = line.split(": ", 1)
                event[key] = json.loads(value) if key == "data" else value
        events.append(event)
    return events


def test_job_list_shows_queue_positions_per_queue(api):
    first = _job()
    _job(kind="probe_clip", queue="cpu")
    _job(status="running")
    second = _job()
    jobs = {j["id"]: j for j in api.get("/api/v1/jobs").json()}
    assert jobs[first]["queue_position"] == 1 and jobs[second]["queue_position"] == 2
    assert [j["queue_position"] for j in jobs.values() if j["queue"] == "cpu"] == [1]
    assert [j["status"] for j in api.get("/api/v1/jobs?status=running").json()] == ["running"]
    assert api.get("/api/v1/jobs?status=sleeping").status_code == 422


def test_resume_makes_a_new_attempt_that_continues_from_the_last_checkpoint(api, media, migrated_env):
    from core.db import session_scope
    from core.models import Checkpoint, Metric, Sample

    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    config = toy_config(api, dataset["id"], steps=6, interval=3)
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": config}).json()
    assert api.post(f"/api/v1/jobs/{created['job_id']}/resume").status_code == 409  # still queued
    assert run_pending_jobs() == ["succeeded"]
    assert api.post(f"/api/v1/jobs/{created['job_id']}/resume").json()["error"]["code"] == "not_resumable"

    # pretend the worker died after step 4: the checkpoint at 6 and the metrics after 3 never happened
    run_dir = Path(migrated_env["AVLORA_DATA_DIR"]) / "runs" / str(created["id"]) / "checkpoints"
    for path in run_dir.glob("*00006*"):
        path.unlink()
    with session_scope() as session:
        session.query(Checkpoint).filter(Checkpoint.step == 6).delete()
        session.query(Checkpoint).filter(Checkpoint.step == 3).delete()  # its row was lost in the crash
        session.query(Metric).filter(Metric.step > 4).delete()
        session.query(Sample).filter(Sample.step >= 3).delete()  # it died while sampling step 3
    _set_job(created["job_id"], status="interrupted")

    resumed = api.post(f"/api/v1/jobs/{created['job_id']}/resume")
    assert resumed.status_code == 201, resumed.text
    new_job = resumed.json()
    assert new_job["id"] != created["job_id"] and new_job["status"] == "queued"
    assert new_job["run"] == {"type": "training", "id": created["id"]}
    older = api.post(f"/api/v1/jobs/{created['job_id']}/resume")
    assert older.status_code == 409 and older.json()["error"]["code"] == "not_latest_attempt"

    assert run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert run["job_id"] == new_job["id"] and run["status"] == "succeeded"
    assert [c["step"] for c in run["checkpoints"]] == [3, 6]  # the lost row is back, nothing twice
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4, 5, 6]
    assert sorted((s["step"], s["variant"]) for s in run["samples"]) == [(0, "base"), (0, "lora"), (3, "lora"),
                                                                        (6, "lora")]
    log = [line["text"] for line in api.get(f"/api/v1/jobs/{new_job['id']}/log").json()]
    assert any("Resuming from the checkpoint at step 3" in text for text in log)


def test_events_replay_rows_and_resume_after_last_event_id(api):
    from core.db import session_scope
    from core.models import TrainingRun
    from core.services import run_records

    with session_scope() as session:  # a finished run's rows, written as a worker writes them
        from core.models import Dataset, PreprocessRun

        dataset = Dataset(name="d", trigger="t")
        pre = PreprocessRun(dataset=dataset, model="toy", buckets="64x64x9", trigger="t", fingerprint="f",
                            clip_results=[], output_dir="preprocess/1")
        run = TrainingRun(dataset=dataset, preprocess_run=pre, config={}, output_dir="runs/1")
        session.add(run)
        session.flush()
        run_id = run.id
    job_id = _job(status="running", params={"run_id": run_id}, step=2, total=4)
    with session_scope() as session:
        run_records.add_log_line(session, job_id, "info", "Starting")
        for step in (1, 2):
            run_records.record_metric(session, run_id, step, {"loss": 1.0 / step, "loss_video": 0.5, "loss_audio": 0.5,
                                                              "lr": 1e-4, "grad_norm": 1, "step_time": 0.1,
                                                              "gpu_mem": 10})
        run_records.record_checkpoint(session, run_id, 2, {"official": "runs/1/x.safetensors"})
    _set_job(job_id, status="succeeded")

    response = api.get(f"/api/v1/jobs/{job_id}/events")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in _parse_sse(response.text) if "event" in e]
    names = [e["event"] for e in events]
    assert names == ["job.progress", "job.log", "run.metric", "run.metric", "run.checkpoint", "job.status"]
    assert events[-1]["data"]["status"] == "succeeded"
    assert [e["data"]["step"] for e in events if e["event"] == "run.metric"] == [1, 2]

    after_first_metric = events[2]["id"]
    resumed = _parse_sse(api.get(f"/api/v1/jobs/{job_id}/events",
                                 headers={"Last-Event-ID": after_first_metric}).text)
    names = [e["event"] for e in resumed if "event" in e]
    assert names == ["job.progress", "run.metric", "run.checkpoint", "job.status"]
    assert api.get("/api/v1/jobs/999/events").status_code == 404


def test_events_stream_live_with_heartbeats_until_the_job_ends(api, monkeypatch):
    from core.config import get_settings
    from core.db import session_scope
    from core.services import run_records

    monkeypatch.setattr(get_settings(), "sse_poll_s", 0.05)
    monkeypatch.setattr(get_settings(), "sse_heartbeat_s", 0.2)
    job_id = _job(status="running", kind="preprocess", params={"preprocess_run_id": 1})

    def worker():
        time.sleep(0.6)
        with session_scope() as session:
            run_records.add_log_line(session, job_id, "info", "clip 1: ok")
        _set_job(job_id, step=1, total=1)
        time.sleep(0.3)
        _set_job(job_id, status="succeeded")

    thread = threading.Thread(target=worker)
    thread.start()
    started = time.monotonic()
    text = api.get(f"/api/v1/jobs/{job_id}/events").text
    thread.join()
    assert time.monotonic() - started < 10
    events = _parse_sse(text)
    assert any(e.get("comment") == "heartbeat" for e in events)
    names = [e["event"] for e in events if "event" in e]
    assert names[0] == "job.progress" and names[1] == "job.status"
    assert "job.log" in names and names[-1] == "job.status"
    assert [e["data"]["status"] for e in events if e.get("event") == "job.status"] == ["running", "succeeded"]


def test_sweeper_interrupts_jobs_whose_worker_stopped_beating(migrated_env):
    from core.db import session_scope
    from core.models import Job, LogLine
    from core.services.sweeper import sweep

    old = datetime.now(UTC) - timedelta(minutes=10)
    dead = _job(status="running", heartbeat_at=old, started_at=old)
    stopping = _job(status="cancelling", heartbeat_at=old, started_at=old)
    alive = _job(status="running", heartbeat_at=datetime.now(UTC))
    with session_scope() as session:
        report = sweep(session, heartbeat_timeout_s=60, redispatch_after_s=3600)
    assert sorted(report.interrupted) == [dead, stopping]
    with session_scope() as session:
        assert session.get(Job, dead).status == "interrupted"
        assert session.get(Job, stopping).status == "interrupted"
        assert session.get(Job, alive).status == "running"
        assert "no heartbeat" in session.get(Job, dead).error
        assert session.query(LogLine).filter(LogLine.job_id == dead).count() == 1


def test_sweeper_sends_again_a_queued_job_whose_task_was_lost(migrated_env):
    from core.config import get_settings
    from core.db import session_scope
    from core.models import Job
    from core.services.job_queue import queue_job
    from core.services.sweeper import sweep

    with session_scope() as session:
        job = queue_job(session, "train", "gpu", {"run_id": 1})
        job_id, first_task = job.id, job.celery_id
    queue_dir = get_settings().file_broker_dir / "queue"
    assert first_task and any(first_task in p.read_text() for p in queue_dir.glob("*.gpu.msg"))
    with session_scope() as session:
        assert sweep(session, redispatch_after_s=0).redispatched == []  # still waiting in the broker

    for path in queue_dir.glob("*.gpu.msg"):  # the broker lost its messages
        path.unlink()
    with session_scope() as session:
        assert sweep(session, redispatch_after_s=3600).redispatched == []  # too young to call lost
        assert sweep(session, redispatch_after_s=0).redispatched == [job_id]
        new_task = session.get(Job, job_id).celery_id
    assert new_task != first_task
    assert any(new_task in p.read_text() for p in queue_dir.glob("*.gpu.msg"))


def test_a_job_queued_while_the_broker_is_down_is_not_lost(api, media, monkeypatch):
    from core.db import session_scope
    from core.models import Job
    from core.services import jobs as job_service
    from core.services.sweeper import sweep

    dataset = ready_dataset(api, media)

    def broker_down(*_args, **_kwargs):
        raise ConnectionRefusedError("broker is restarting")

    monkeypatch.setattr(job_service, "send_job", broker_down)
    response = api.post(f"/api/v1/datasets/{dataset['id']}/preprocess", json={"model": "toy"})
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job.status == "queued" and job.celery_id is None
    monkeypatch.undo()
    with session_scope() as session:
        assert sweep(session, redispatch_after_s=0).redispatched == [job_id]
        assert session.get(Job, job_id).celery_id
    assert run_pending_jobs() == ["succeeded"]


@pytest.mark.parametrize("status", ["queued", "running"])
def test_cancel_of_a_training_job(api, status):
    job_id = _job(status=status)
    answer = api.post(f"/api/v1/jobs/{job_id}/cancel").json()
    assert answer["status"] == ("cancelled" if status == "queued" else "cancelling")


def test_an_older_attempt_never_trains_beside_the_newer_one(api, media):
    """A message of a superseded attempt (redelivered late) must not start a second writer of the run."""
    from core.db import session_scope
    from core.models import TrainingRun

    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"],
                                             "config": toy_config(api, dataset["id"])}).json()
    newer = _job(status="running", params={"run_id": created["id"]}, heartbeat_at=datetime.now(UTC))
    with session_scope() as session:
        session.get(TrainingRun, created["id"]).job_id = newer
    assert run_pending_jobs() == ["failed"]
    job = api.get(f"/api/v1/jobs/{created['job_id']}").json()
    assert f"job #{newer} continues it" in job["error"]
    assert api.get(f"/api/v1/runs/{created['id']}").json()["metrics"] == []
