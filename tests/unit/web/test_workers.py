"""A queued job that no live worker can take says why, in its JSON, on the jobs page and on the
run page; the message goes away when a worker serving its queue announces itself (SQLite)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.web.compare_support import seed_run_with_job

NO_GPU_WORKER = "No worker serves the gpu queue: start one with `avlora worker --queues gpu`."


@pytest.fixture
def embedded_worker():
    """Restores "no embedded worker" after a test that plays ``avlora serve``'s supervisor."""
    from core.services import workers

    yield workers.set_embedded_worker
    workers.set_embedded_worker(None)


def _queued_job(queue: str = "gpu", kind: str = "train") -> int:
    from core.db import session_scope
    from core.models import Job

    with session_scope() as session:
        job = Job(kind=kind, queue=queue, status="queued", params={})
        session.add(job)
        session.flush()
        return job.id


def _announce(queues: list[str], pid: int) -> int:
    from core.db import session_scope
    from core.services.workers import announce_worker

    with session_scope() as session:
        return announce_worker(session, name=f"avlora-{'-'.join(queues)}@test", host="test-host", pid=pid,
                               queues=queues, gpus=["NVIDIA H200"] if "gpu" in queues else [])


def _age_worker(worker_id: int, seconds: float) -> None:
    from core.db import session_scope
    from core.models import Worker

    with session_scope() as session:
        session.get(Worker, worker_id).heartbeat_at = datetime.now(UTC) - timedelta(seconds=seconds)


def test_a_queued_job_names_the_missing_worker_until_one_serving_its_queue_is_up(api):
    gpu_job, cpu_job = _queued_job("gpu"), _queued_job("cpu", kind="probe_clip")
    assert api.get(f"/api/v1/jobs/{gpu_job}").json()["waiting_for"] == NO_GPU_WORKER

    _announce(["cpu"], pid=os.getpid())  # a CPU worker takes the probe, not the training
    assert api.get(f"/api/v1/jobs/{gpu_job}").json()["waiting_for"] == NO_GPU_WORKER
    assert api.get(f"/api/v1/jobs/{cpu_job}").json()["waiting_for"] is None

    gpu_worker = _announce(["gpu"], pid=os.getpid() + 1)
    listed = {job["id"]: job for job in api.get("/api/v1/jobs").json()}
    assert listed[gpu_job]["waiting_for"] is None and listed[cpu_job]["waiting_for"] is None

    _age_worker(gpu_worker, seconds=60)  # it stopped beating: it died
    assert api.get(f"/api/v1/jobs/{gpu_job}").json()["waiting_for"] == NO_GPU_WORKER


def test_a_worker_stopping_cleanly_is_gone_at_once_and_a_running_job_waits_for_nothing(api):
    from core.db import session_scope
    from core.services.workers import retire_worker

    job_id = _queued_job("gpu")
    worker_id = _announce(["cpu", "gpu"], pid=os.getpid())
    assert api.get(f"/api/v1/jobs/{job_id}").json()["waiting_for"] is None
    with session_scope() as session:
        retire_worker(session, worker_id)
    assert api.get(f"/api/v1/jobs/{job_id}").json()["waiting_for"] == NO_GPU_WORKER

    running = _queued_job("gpu")
    with session_scope() as session:
        from core.models import Job

        session.get(Job, running).status = "running"
    assert api.get(f"/api/v1/jobs/{running}").json()["waiting_for"] is None


def test_the_jobs_page_says_why_a_job_waits_and_lists_the_workers_that_are_up(browser_client):
    job_id = _queued_job("gpu")
    page = browser_client.get("/jobs").text
    assert NO_GPU_WORKER in page
    assert "No worker is up" in page

    _announce(["cpu", "gpu"], pid=os.getpid())
    table = browser_client.get("/jobs/table").text  # what the page polls
    assert "waiting-for" not in table and f'id="job-{job_id}"' in table
    assert "avlora-cpu-gpu@test" in table and "cpu, gpu; NVIDIA H200" in table


def test_on_the_embedded_default_the_studio_says_it_is_restarting_its_worker(api, browser_client,
                                                                              embedded_worker):
    run_id, job_id = seed_run_with_job("queued")
    embedded_worker(["cpu", "gpu"], ended="killed by SIGKILL")
    expected = ("The studio's worker ended (killed by SIGKILL); the studio is restarting it: "
                "the job begins when it is back.")
    assert api.get(f"/api/v1/jobs/{job_id}").json()["waiting_for"] == expected
    run_page = browser_client.get(f"/runs/{run_id}").text
    assert 'id="h-waiting"' in run_page and "the studio is restarting it" in run_page
    assert "the studio is restarting it" in browser_client.get("/jobs").text

    embedded_worker(["cpu"])  # an embedded worker for the cpu queue only: a gpu worker is still missing
    assert api.get(f"/api/v1/jobs/{job_id}").json()["waiting_for"] == NO_GPU_WORKER

    embedded_worker(["cpu", "gpu"])
    _announce(["cpu", "gpu"], pid=os.getpid())  # the restarted worker is up
    assert api.get(f"/api/v1/jobs/{job_id}").json()["waiting_for"] is None
    run_page = browser_client.get(f"/runs/{run_id}").text
    assert "the studio is restarting it" not in run_page
