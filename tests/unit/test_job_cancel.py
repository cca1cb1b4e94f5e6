"""A cancel reaches a job within seconds whatever it is doing (worker/jobs.py).

A handler that opted in (``ctx.interrupt_on_cancel()``) and reaches no cancellation point is
interrupted a few seconds after the heartbeat sees the cancel, and the job ends ``cancelled``;
one that took the cancel up and is stopping by itself (a training run writing its checkpoint) is
left to finish. Each handler here is a stretch of work of many short pieces, the shape of model
loading and sampling, run by the real job runner on a real database.
"""

from __future__ import annotations

import threading
import time

from core.db import session_scope
from core.models import Job, JobStatus
from worker.jobs import CANCEL_GRACE_S, JobCancelled, JobInterrupted, run_job

LONG_S = 60.0  # longer than any test may take: the handler never ends by itself


def _queued_job() -> int:
    with session_scope() as session:
        job = Job(kind="train", queue="gpu", status=JobStatus.queued.value, params={})
        session.add(job)
        session.flush()
        return job.id


def _cancel_after(job_id: int, delay_s: float) -> threading.Thread:
    """What the cancel button does to a running job's row, ``delay_s`` after the job starts."""

    def cancel() -> None:
        time.sleep(delay_s)
        with session_scope() as session:
            session.get(Job, job_id).status = JobStatus.cancelling.value

    thread = threading.Thread(target=cancel, daemon=True)
    thread.start()
    return thread


def _work(seconds: float, done: list[str] | None = None, what: str = "") -> None:
    """Work without a cancellation point, in short pieces (each piece a C call, as torch ops are)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.02)
    if done is not None:
        done.append(what)


def _run(handler) -> tuple[str, float, dict]:
    job_id = _queued_job()
    _cancel_after(job_id, 0.3)
    started = time.monotonic()
    status = run_job(job_id, {"train": handler}, heartbeat_timeout_s=120)
    with session_scope() as session:
        job = session.get(Job, job_id)
        row = {"status": job.status, "error": job.error}
    return status, time.monotonic() - started, row


def test_set_up_without_a_cancellation_point_is_interrupted_within_seconds(migrated_env):
    def set_up_forever(ctx, params):
        ctx.interrupt_on_cancel()
        _work(LONG_S)

    status, took, row = _run(set_up_forever)
    assert status == "cancelled" and row == {"status": "cancelled", "error": None}
    # heartbeat interval (1 s here) + grace + delivery
    assert took < 1 + CANCEL_GRACE_S + 2, took


def test_a_handler_that_took_up_the_cancel_is_left_to_finish_its_checkpoint(migrated_env):
    saved: list[str] = []

    def train_then_checkpoint(ctx, params):
        ctx.interrupt_on_cancel()
        while not ctx.cancel_requested:
            _work(0.05)
        ctx.stopping_for_cancel()
        _work(CANCEL_GRACE_S + 2, saved, "checkpoint")  # longer than the grace
        raise JobCancelled()

    status, _took, _row = _run(train_then_checkpoint)
    assert status == "cancelled" and saved == ["checkpoint"]


def test_an_interrupt_caught_on_the_way_is_raised_again(migrated_env):
    caught: list[str] = []

    def swallows_the_first(ctx, params):
        ctx.interrupt_on_cancel()
        try:
            _work(LONG_S)
        except JobInterrupted:
            caught.append("first")
        _work(LONG_S)

    status, _took, _row = _run(swallows_the_first)
    assert status == "cancelled" and caught == ["first"]


def test_a_handler_that_did_not_opt_in_finishes_its_unit_of_work(migrated_env):
    finished: list[str] = []

    def cooperative(ctx, params):
        _work(CANCEL_GRACE_S + 2, finished, "unit of work")
        ctx.check_cancelled()

    status, _took, _row = _run(cooperative)
    assert status == "cancelled" and finished == ["unit of work"]
