""""Save a checkpoint now" and "sample now" on a running training (SQLite, jobs run in-process).

The requests are sent through the API while the toy training runs: a hook on the worker's
per-step recorder posts them during a chosen step, before the worker reads the job row for
that step, so the step they land on is known.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.test_jobs_api import _job, _parse_sse
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def _during_step(monkeypatch, actions: dict[int, callable]) -> None:
    """Run ``actions[step]()`` once, while the worker reports step ``step`` (before it reads the job row)."""
    from worker.handlers.train import RowRecorder

    original = RowRecorder.on_progress

    def on_progress(recorder, event):
        if event.step in actions:
            actions.pop(event.step)()
        original(recorder, event)

    monkeypatch.setattr(RowRecorder, "on_progress", on_progress)


def _queued_run(api, media, **config) -> dict:
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"],
                                             "config": toy_config(api, dataset["id"], **config)})
    assert created.status_code == 201, created.text
    return created.json()


def test_sample_now_and_checkpoint_now_land_at_the_current_step(api, media, monkeypatch, migrated_env):
    created = _queued_run(api, media, steps=4, interval=4)  # scheduled: a checkpoint at step 4 only
    job_url = f"/api/v1/jobs/{created['job_id']}"
    seen: dict[str, dict] = {}

    def ask_samples():
        first = api.post(f"{job_url}/sample-now")
        assert first.status_code == 202, first.text
        again = api.post(f"{job_url}/sample-now").json()  # a double click asks once
        assert again["requests"] == first.json()["requests"] and set(again["requests"]) == {"sample"}

    def ask_checkpoint():
        seen["before checkpoint"] = api.get(job_url).json()["requests"]
        response = api.post(f"{job_url}/checkpoint-now")
        assert response.status_code == 202, response.text

    _during_step(monkeypatch, {1: ask_samples, 2: ask_checkpoint,
                               3: lambda: seen.setdefault("after", api.get(job_url).json())})
    assert run_pending_jobs() == ["succeeded"]

    assert seen["before checkpoint"] == {}  # the worker cleared the sample request once it sampled
    assert seen["after"]["requests"] == {} and seen["after"]["status"] == "running"
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert [c["step"] for c in run["checkpoints"]] == [2, 4]
    assert sorted((s["step"], s["variant"]) for s in run["samples"]) == [
        (0, "base"), (0, "lora"), (1, "lora"), (2, "lora"), (4, "lora")]
    folder = Path(migrated_env["AVLORA_DATA_DIR"]) / run["output_dir"] / "checkpoints"
    for name in ("lora_weights_step_00002.safetensors", "lora_weights_step_00002.diffusers.safetensors",
                 "training_state_step_00002.pt"):
        assert (folder / name).is_file(), name
    assert not (folder / "training_state_step_00001.pt").exists()  # sample-now writes no checkpoint
    assert api.get(run["checkpoints"][0]["downloads"]["comfy"]).status_code == 200
    assert api.get(run["samples"][2]["mp4_url"]).status_code == 200

    log = [line["text"] for line in api.get(f"{job_url}/log").json()]
    assert "Samples asked for at step 1." in log and "Checkpoint asked for at step 2." in log
    events = [e for e in _parse_sse(api.get(f"{job_url}/events").text) if "event" in e]
    assert [e["data"]["step"] for e in events if e["event"] == "run.checkpoint"] == [2, 4]
    assert (1, "lora") in {(e["data"]["step"], e["data"]["variant"]) for e in events if e["event"] == "run.sample"}
    assert api.get(job_url).json()["requests"] == {}


def test_a_run_resumes_from_a_checkpoint_asked_for_out_of_schedule(api, media, monkeypatch):
    created = _queued_run(api, media, steps=6, interval=4)  # scheduled: 4 and 6
    job_url = f"/api/v1/jobs/{created['job_id']}"

    def checkpoint_then_stop():
        assert api.post(f"{job_url}/checkpoint-now").status_code == 202
        assert api.post(f"{job_url}/cancel").json()["status"] == "cancelling"

    _during_step(monkeypatch, {3: checkpoint_then_stop})
    assert run_pending_jobs() == ["cancelled"]
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert [c["step"] for c in run["checkpoints"]] == [3]  # asked for, and not written twice by the cancel
    refused = api.post(f"{job_url}/checkpoint-now")
    assert refused.status_code == 409 and "resume it first" in refused.json()["error"]["message"]

    resumed = api.post(f"{job_url}/resume")
    assert resumed.status_code == 201, resumed.text
    assert run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert [c["step"] for c in run["checkpoints"]] == [3, 4, 6]
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4, 5, 6]
    # a cancel does not wait for the samples of the checkpoint it kept: the resume makes them
    assert (3, "lora") in {(s["step"], s["variant"]) for s in run["samples"]}
    log = [line["text"] for line in api.get(f"/api/v1/jobs/{resumed.json()['id']}/log").json()]
    assert any("Resuming from the checkpoint at step 3" in text for text in log)


@pytest.mark.parametrize("action", ["checkpoint-now", "sample-now"])
def test_requests_are_refused_unless_a_training_is_running(api, action):
    finished = _job(status="succeeded", step=4, total=4)
    answer = api.post(f"/api/v1/jobs/{finished}/{action}")
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert error["code"] == "not_running_training"
    assert f"job #{finished} is succeeded" in error["message"] and "only while the training runs" in error["message"]

    queued = api.post(f"/api/v1/jobs/{_job(status='queued')}/{action}")
    assert queued.status_code == 409 and "has not started yet" in queued.json()["error"]["message"]
    preprocess = api.post(f"/api/v1/jobs/{_job(kind='preprocess', status='running')}/{action}")
    assert preprocess.status_code == 409 and "is a preprocess job" in preprocess.json()["error"]["message"]
    assert api.post(f"/api/v1/jobs/999/{action}").status_code == 404
    assert api.get(f"/api/v1/jobs/{finished}").json()["requests"] == {}  # nothing was stored


def test_sample_now_needs_validation_prompts(api):
    from core.db import session_scope
    from core.models import Dataset, PreprocessRun, TrainingRun
    from core.recipe.run_config import preset_config

    config = preset_config("sanity").model_dump(mode="json")
    config["validation"]["prompts"] = []
    with session_scope() as session:
        dataset = Dataset(name="d", trigger="t")
        pre = PreprocessRun(dataset=dataset, model="toy", buckets="64x64x9", trigger="t", fingerprint="f",
                            clip_results=[], output_dir="preprocess/1")
        run = TrainingRun(dataset=dataset, preprocess_run=pre, config=config, output_dir="runs/1")
        session.add(run)
        session.flush()
        run_id = run.id
    job_id = _job(status="running", params={"run_id": run_id})
    answer = api.post(f"/api/v1/jobs/{job_id}/sample-now")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "no_validation_prompts"
    assert api.post(f"/api/v1/jobs/{job_id}/checkpoint-now").json()["requests"].keys() == {"checkpoint"}
