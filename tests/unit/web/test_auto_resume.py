"""Automatic retry: the sweeper resumes an interrupted job from its last checkpoint while
AVLORA_AUTO_RESUME_ATTEMPTS allows, and logs it on the jobs (SQLite, file broker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)


def _allow_attempts(monkeypatch, attempts: int) -> None:
    from core.config import get_settings

    monkeypatch.setenv("AVLORA_AUTO_RESUME_ATTEMPTS", str(attempts))
    get_settings.cache_clear()
    assert get_settings().auto_resume_attempts == attempts


def _worker_died(job_id: int) -> None:
    """The job's worker was killed: the row still says running, its heartbeat is old."""
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        job = session.get(Job, job_id)
        job.status, job.heartbeat_at, job.started_at, job.finished_at = "running", LONG_AGO, LONG_AGO, None


def _sweep():
    from core.db import session_scope
    from core.services.sweeper import sweep

    with session_scope() as session:
        return sweep(session)


def _log(api, job_id: int) -> list[str]:
    return [line["text"] for line in api.get(f"/api/v1/jobs/{job_id}/log").json()]


def _training_run_row(model: str = "toy") -> tuple[int, int]:
    """A training run and its job, as rows only (the job never runs here): (run id, job id)."""
    from core.db import session_scope
    from core.models import Dataset, Job, PreprocessRun, TrainingRun
    from core.recipe.run_config import preset_config

    with session_scope() as session:
        dataset = Dataset(name="d", trigger="t")
        pre = PreprocessRun(dataset=dataset, model="toy", buckets="64x64x9", trigger="t", fingerprint="f",
                            clip_results=[], output_dir="preprocess/1")
        config = preset_config("sanity", model=model).model_dump(mode="json")
        run = TrainingRun(dataset=dataset, preprocess_run=pre, config=config, output_dir="runs/1")
        session.add(run)
        session.flush()
        job = Job(kind="train", queue="gpu", status="running", params={"run_id": run.id})
        session.add(job)
        session.flush()
        run.job_id = job.id
        return run.id, job.id


def test_an_interrupted_training_resumes_by_itself_from_its_last_checkpoint(api, media, monkeypatch):
    from core.db import session_scope
    from core.models import Checkpoint, Metric, Sample

    _allow_attempts(monkeypatch, 1)
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"],
                                             "config": toy_config(api, dataset["id"], steps=4, interval=2)}).json()
    assert run_pending_jobs() == ["succeeded"]
    # rewind to "killed after step 3": the checkpoint at 4 and the rows after 3 never happened
    folder = Path(api.get(f"/api/v1/runs/{created['id']}").json()["output_dir"])
    from core.config import get_settings

    for path in (get_settings().data_dir / folder / "checkpoints").glob("*00004*"):
        path.unlink()
    with session_scope() as session:
        for model in (Checkpoint, Sample):
            session.query(model).filter(model.step == 4).delete()
        session.query(Metric).filter(Metric.step > 3).delete()
    _worker_died(created["job_id"])

    report = _sweep()
    assert report.interrupted == [created["job_id"]]
    new_id = report.resumed[created["job_id"]]
    assert api.get(f"/api/v1/jobs/{created['job_id']}").json()["status"] == "interrupted"
    assert api.get(f"/api/v1/jobs/{new_id}").json()["status"] == "queued"
    assert f"Resumed automatically as job #{new_id} (automatic attempt 1 of 1)." in _log(api, created["job_id"])

    assert run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert run["job_id"] == new_id and run["status"] == "succeeded"
    assert [c["step"] for c in run["checkpoints"]] == [2, 4]
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4]
    log = _log(api, new_id)
    assert f"Automatic resume of interrupted job #{created['job_id']} (automatic attempt 1 of 1)." in log
    assert any("Resuming from the checkpoint at step 2" in text for text in log)


def test_automatic_resumes_stop_at_the_limit_and_a_person_resets_the_count(api, monkeypatch):
    from core.db import session_scope
    from core.models import Job

    _allow_attempts(monkeypatch, 2)
    run_id, first = _training_run_row()
    chain = [first]
    for _attempt in range(2):  # every attempt dies too; the sweeper resumes twice
        _worker_died(chain[-1])
        report = _sweep()
        assert report.interrupted == [chain[-1]] and list(report.resumed) == [chain[-1]], _log(api, chain[-1])
        chain.append(report.resumed[chain[-1]])
    with session_scope() as session:
        assert [session.get(Job, job_id).params.get("auto_resumes") for job_id in chain] == [None, 1, 2]

    _worker_died(chain[-1])
    report = _sweep()
    assert report.interrupted == [chain[-1]] and report.resumed == {}  # not a third time
    assert api.get(f"/api/v1/jobs/{chain[-1]}").json()["status"] == "interrupted"
    assert api.get(f"/api/v1/runs/{run_id}").json()["job_id"] == chain[-1]
    assert any(text.startswith("Not resumed automatically: 2 automatic attempt(s) in a row")
               for text in _log(api, chain[-1]))

    by_hand = api.post(f"/api/v1/jobs/{chain[-1]}/resume")  # a person's resume starts a fresh count
    assert by_hand.status_code == 201, by_hand.text
    _worker_died(by_hand.json()["id"])
    assert list(_sweep().resumed) == [by_hand.json()["id"]]


def test_no_automatic_resume_when_off_or_when_the_job_was_being_cancelled(api, monkeypatch):
    from core.db import session_scope
    from core.models import Job

    _run_id, job_id = _training_run_row()
    _worker_died(job_id)
    report = _sweep()  # the default: 0 attempts, a person decides
    assert report.interrupted == [job_id] and report.resumed == {}

    _allow_attempts(monkeypatch, 3)
    _run_id, stopping = _training_run_row()
    _worker_died(stopping)
    with session_scope() as session:
        session.get(Job, stopping).status = "cancelling"  # the person asked it to stop, then the worker died
    report = _sweep()
    assert report.interrupted == [stopping] and report.resumed == {}
    assert api.get("/api/v1/jobs?status=queued").json() == []

    _run_id, no_weights = _training_run_row(model="ltx-2.3")  # a resume a person could not make either
    _worker_died(no_weights)
    assert _sweep().resumed == {}
    refused = [text for text in _log(api, no_weights) if text.startswith("Automatic resume refused:")]
    assert len(refused) == 1 and "ltx-2.3-22b-dev.safetensors" in refused[0]


def test_job_timings_are_settings_with_bounds(monkeypatch, studio_env):
    from pydantic import ValidationError

    from core.config import Settings

    for name, value in (("SWEEP_INTERVAL_S", "0.3"), ("REDISPATCH_AFTER_S", "7"), ("SSE_POLL_S", "0.1"),
                        ("SSE_HEARTBEAT_S", "2"), ("HEARTBEAT_INTERVAL_S", "3"), ("AUTO_RESUME_ATTEMPTS", "4")):
        monkeypatch.setenv(f"AVLORA_{name}", value)
    settings = Settings()
    assert (settings.sweep_interval_s, settings.redispatch_after_s, settings.sse_poll_s, settings.sse_heartbeat_s,
            settings.heartbeat_interval_s, settings.auto_resume_attempts) == (0.3, 7, 0.1, 2, 3, 4)

    monkeypatch.setenv("AVLORA_AUTO_RESUME_ATTEMPTS", "-1")
    with pytest.raises(ValidationError, match="auto_resume_attempts"):
        Settings()
    monkeypatch.setenv("AVLORA_AUTO_RESUME_ATTEMPTS", "0")
    monkeypatch.setenv("AVLORA_HEARTBEAT_INTERVAL_S", "90")  # the default timeout is 120 s
    with pytest.raises(ValidationError, match="must be at most half of AVLORA_HEARTBEAT_TIMEOUT_S"):
        Settings()
