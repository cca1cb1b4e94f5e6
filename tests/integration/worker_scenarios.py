"""Scenarios on a running Celery worker and a preprocessed dataset (not collected): each is called
by ``test_training_jobs.test_preprocess_train_cancel_and_job_requests_on_a_real_worker``, so that
one worker, one probe and one preprocess serve them all.

- :func:`checkpoint_now_and_sample_now`: "checkpoint now" and "sample now" on a running training.
- :func:`two_processes_cancel_and_kill`: a run on two processes (issue 18) cancelled, and another
  whose rank 1 is killed with SIGKILL.
- :func:`cancel_during_set_up`: cancel is honoured within seconds while a training sets up.
  Before its first step a run loads the model, encodes its validation prompts and samples the
  base model at step 0; on a real model that takes minutes, and a cancel used to wait for it
  all. Here the toy run is given many validation prompts and sampling steps (the options a
  person sets in the run form), so set-up lasts long enough to be cancelled in the middle of it.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from core.files import is_temporary
from tests.integration.test_training_jobs import _config, _job, _rows, _start_run, _wait, _wait_final

SLOW_SETUP_PROMPTS = 12  # each is encoded, then sampled at step 0, before the first step
SLOW_SETUP_SAMPLING_STEPS = 200  # set-up then lasts minutes here; before the fix, so did the cancel


def checkpoint_now_and_sample_now(client, data_dir: Path, dataset_id: int) -> None:
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


def _slow_setup_run(client, dataset_id: int) -> dict:
    config = _config(client, dataset_id, steps=50, interval=25)
    config["validation"].update(
        inference_steps=SLOW_SETUP_SAMPLING_STEPS, variants=["lora", "base"],
        prompts=[f"{{trigger}}, a woman speaks calmly, take {n}: hello there" for n in range(SLOW_SETUP_PROMPTS)])
    created = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config})
    assert created.status_code == 201, created.text
    return created.json()


def cancel_during_set_up(client, data_dir: Path, dataset_id: int) -> None:
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


def _rank_pids(run_id: int) -> dict[int, int]:
    """``rank -> pid`` of the live rank processes of run ``run_id`` (read from /proc)."""
    ranks = {}
    for proc in Path("/proc").iterdir():
        try:
            environ = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
            state = (proc / "stat").read_text().split()[2]
        except (OSError, ValueError):
            continue
        if f"/runs/{run_id}/ranks/".encode() in environ.get(b"AVLORA_CONTROL_FILE", b"") and state != "Z":
            ranks[int(environ[b"RANK"])] = int(proc.name)
    return ranks


def _two_process_run(client, dataset_id: int) -> dict:
    config = _config(client, dataset_id, steps=5000, interval=2500)
    config["optimization"]["num_processes"] = 2
    created = client.post("/api/v1/runs", json={"dataset_id": dataset_id, "config": config})
    assert created.status_code == 201, created.text
    return created.json()


def two_processes_cancel_and_kill(client, data_dir: Path, dataset_id: int) -> None:
    run = _two_process_run(client, dataset_id)
    _wait(lambda: _job(client, run["job_id"])["step"] >= 3, 90, "the two-process training to reach step 3")
    assert sorted(_rank_pids(run["id"])) == [0, 1]
    log = [line["text"] for line in client.get(f"/api/v1/jobs/{run['job_id']}/log").json()]
    assert "Training on 2 processes (cpu, gloo); global batch 2." in log
    asked = time.monotonic()
    assert client.post(f"/api/v1/jobs/{run['job_id']}/cancel").json()["status"] == "cancelling"
    job = _wait_final(client, run["job_id"], timeout=30)
    assert job["status"] == "cancelled" and time.monotonic() - asked < 20, job
    (step, files), = _rows(run["id"])[0]  # rank 0 checkpointed where the run stopped
    assert step == job["step"] and (data_dir / files["state"]).is_file()
    _wait(lambda: not _rank_pids(run["id"]), 10, "every rank to end")

    killed = _two_process_run(client, dataset_id)
    _wait(lambda: _job(client, killed["job_id"])["step"] >= 3, 90, "the second two-process training")
    os.kill(_rank_pids(killed["id"])[1], signal.SIGKILL)
    job = _wait_final(client, killed["job_id"], timeout=30)
    assert job["status"] == "interrupted", job
    assert "rank 1 was killed by SIGKILL; the other ranks were ended" in job["error"], job
    _wait(lambda: not _rank_pids(killed["id"]), 10, "rank 0 to be ended too")
