"""A run on two processes queued through the API (issue 18): the job worker starts the ranks
(gloo on this CPU host), writes rank 0's events as the same rows a one-process run writes, and a
host with too few GPUs gives the job back to the queue, saying what it waits for."""

from __future__ import annotations

from tests.unit.web.helpers import run_pending_jobs
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config


def _queued(api, media, processes: int, **config) -> dict:
    dataset = ready_dataset(api, media)
    preprocessed(api, dataset["id"], model="toy")
    body = toy_config(api, dataset["id"], **config)
    body["optimization"]["num_processes"] = processes
    created = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": body})
    assert created.status_code == 201, created.text
    return created.json()


def test_a_two_process_run_trains_and_writes_its_rows_once(api, browser_client, media, migrated_env):
    created = _queued(api, media, 2, steps=4, interval=2)
    assert run_pending_jobs() == ["succeeded"]
    run = api.get(f"/api/v1/runs/{created['id']}").json()
    assert run["config"]["optimization"]["num_processes"] == 2
    assert [c["step"] for c in run["checkpoints"]] == [2, 4]
    assert sorted((s["step"], s["variant"]) for s in run["samples"]) == [(0, "base"), (0, "lora"), (2, "lora"),
                                                                        (4, "lora")]
    assert [m["step"] for m in run["metrics"]] == [1, 2, 3, 4]  # rank 0 reports each step once
    job = api.get(f"/api/v1/jobs/{created['job_id']}").json()
    assert job["status"] == "succeeded" and job["step"] == 4 and job["gpu"] == "2 processes (cpu)"
    log = [line["text"] for line in api.get(f"/api/v1/jobs/{created['job_id']}/log").json()]
    assert "Training on 2 processes (cpu, gloo); global batch 2." in log
    assert api.get(run["checkpoints"][-1]["downloads"]["comfy"]).status_code == 200
    page = browser_client.get(f"/runs/{created['id']}").text
    assert "CPU, 2 processes (no GPU)" in page and "Memory (rank 0&#39;s peak RSS)" in page  # not "GPU memory"


def test_a_host_with_too_few_gpus_gives_the_job_back_to_the_queue(api, browser_client, media, monkeypatch,
                                                                 migrated_env):
    import worker.handlers.train_ranks as train_ranks

    monkeypatch.setattr(train_ranks, "host_gpu_indices", lambda: [0])  # a one-GPU host
    created = _queued(api, media, 2)
    assert run_pending_jobs() == ["queued"]
    job = api.get(f"/api/v1/jobs/{created['job_id']}").json()
    assert job["status"] == "queued"
    assert "trains on 2 GPUs of one host; this worker's host has 1" in job["message"]
    assert job["waiting_for"] == job["message"]  # the jobs page and the run page say what it waits for
    page = browser_client.get(f"/runs/{created['id']}").text
    assert "It waits for a worker on a host with 2 GPUs." in page
    assert api.get(f"/api/v1/runs/{created['id']}").json()["checkpoints"] == []


def test_the_run_form_sets_the_number_of_gpus(api, browser_client):
    import re

    import yaml

    from tests.unit.web.helpers import config_yaml_of, create_dataset
    from tests.unit.web.training_support import TRIGGER

    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    page = browser_client.get(f"/datasets/{dataset['id']}/runs/new?preset=sanity").text
    assert re.search(r'<input id="f-processes" name="num_processes"[^>]*value="1"', page)
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    fields = {"csrf_token": token, "source": "fields", "config_yaml": config_yaml_of(page), "num_processes": "4"}
    lint = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data=fields)
    assert yaml.safe_load(config_yaml_of(lint.text))["optimization"]["num_processes"] == 4
    bad = browser_client.post(f"/datasets/{dataset['id']}/runs/lint", data={**fields, "num_processes": "0"})
    assert "num_processes" in bad.text
    assert "disabled" in re.search(r'<button[^>]*id="queue-button"[^>]*>', bad.text).group(0)


def test_the_form_says_when_no_worker_host_has_the_gpus(api, browser_client, migrated_env):
    import re

    from core.db import session_scope
    from core.services.workers import announce_worker
    from tests.unit.web.helpers import config_yaml_of, create_dataset
    from tests.unit.web.training_support import TRIGGER

    dataset = create_dataset(api, trigger=TRIGGER, buckets="64x64x9")
    page = browser_client.get(f"/datasets/{dataset['id']}/runs/new?preset=sanity").text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)"', page).group(1)
    fields = {"csrf_token": token, "source": "fields", "config_yaml": config_yaml_of(page)}

    def checks(processes: str) -> str:
        return browser_client.post(f"/datasets/{dataset['id']}/runs/lint",
                                   data={**fields, "num_processes": processes}).text

    with session_scope() as session:  # two one-GPU workers on one host, one GPU worker elsewhere
        for host, pid in (("node-a", 11), ("node-a", 12), ("node-b", 13)):
            announce_worker(session, name=f"gpu@{host}-{pid}", host=host, pid=pid, queues=["gpu"],
                            gpus=["NVIDIA H200"])
    assert "processes_without_gpus" not in checks("2")  # node-a has 2
    text = checks("4")
    assert 'class="issue warning" data-code="processes_without_gpus"' in text  # a warning: the run may wait
    assert "No host of the gpu workers up has 4 GPUs (the most: 2): the run will wait" in text
