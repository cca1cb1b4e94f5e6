"""A broker that cannot be reached: queueing still answers at once, the answer, the job and the
pages say why the job waits, the sweeper sends it once the (real) Redis answers, and the log says
it once per outage, without a traceback per sweeper pass."""

from __future__ import annotations

import logging
import time

import pytest

from tests.support import redis_broker, reset_app_caches
from tests.unit.web.training_support import preprocessed, ready_dataset, toy_config

UNREACHABLE = "redis://:secret@127.0.0.1:1/0"  # nothing listens on port 1: connection refused
SHOWN = "redis://:***@127.0.0.1:1/0"
JOB_WARNING = f"the broker ({SHOWN}) is unreachable: the job is queued and will be sent when it returns"


@pytest.fixture
def broker_down(migrated_env, monkeypatch):
    """The studio's broker is a Redis URL nothing answers at (a fresh outage record)."""
    from core.queue import BROKER

    monkeypatch.setenv("AVLORA_BROKER_URL", UNREACHABLE)
    reset_app_caches()
    BROKER.since = None
    yield UNREACHABLE
    BROKER.since = None


def _broker_records(caplog, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == level and "broker" in r.getMessage()]


def _sweep():
    from core.db import session_scope
    from core.services.sweeper import sweep

    with session_scope() as session:
        return sweep(session, heartbeat_timeout_s=3600, redispatch_after_s=0)


def test_a_run_queued_while_the_broker_is_away_says_so_and_is_sent_when_it_returns(
        broker_down, api, browser_client, media, monkeypatch, caplog):
    caplog.set_level(logging.INFO)
    dataset = ready_dataset(api, media)  # probe and preprocess jobs run in-process, unsent
    preprocessed(api, dataset["id"], model="toy")
    started = time.monotonic()
    answer = api.post("/api/v1/runs", json={"dataset_id": dataset["id"], "config": toy_config(api, dataset["id"])})
    assert answer.status_code == 201, answer.text
    assert time.monotonic() - started < 5  # refused fast, not a hanging request
    body = answer.json()
    warned = [w for w in body["warnings"] if w["code"] == "broker_unreachable"]
    assert [w["message"] for w in warned] == [JOB_WARNING[0].upper() + JOB_WARNING[1:] + "."]
    assert "secret" not in answer.text

    job = api.get(f"/api/v1/jobs/{body['job_id']}").json()
    assert job["status"] == "queued" and job["warning"] == JOB_WARNING
    assert [w["code"] for w in api.get(f"/api/v1/runs/{body['id']}").json()["warnings"]] == ["broker_unreachable"]
    assert JOB_WARNING in browser_client.get("/jobs").text
    assert "is unreachable: the job is queued" in browser_client.get(f"/runs/{body['id']}").text
    log_text = " ".join(line["text"] for line in api.get(f"/api/v1/jobs/{body['job_id']}/log").json())
    assert "is unreachable: the job is queued and will be sent when it returns" in log_text

    assert _sweep().redispatched == [] and _sweep().redispatched == []  # still away: quiet passes
    assert len(_broker_records(caplog, logging.WARNING)) == 1  # once for the outage, not per job or pass
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]

    with redis_broker() as live_url:  # the broker is back
        monkeypatch.setenv("AVLORA_BROKER_URL", live_url)
        reset_app_caches()
        assert _sweep().redispatched == [body["job_id"]]
        job = api.get(f"/api/v1/jobs/{body['job_id']}").json()
        assert job["warning"] is None
        assert api.get(f"/api/v1/runs/{body['id']}").json()["warnings"] == []
        assert _message_waits_in_redis(live_url, "gpu", body["job_id"])
    assert len(_broker_records(caplog, logging.INFO)) == 1
    assert "reachable again" in _broker_records(caplog, logging.INFO)[0].getMessage()


def _message_waits_in_redis(url: str, queue: str, job_id: int) -> bool:
    """Whether a "run job ``job_id``" task waits in the Redis list of ``queue``."""
    import json

    import redis

    client = redis.Redis.from_url(url)
    try:
        headers = [json.loads(raw)["headers"] for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()
    return any(h["task"] == "avlora.run_job" and h["argsrepr"] == f"[{job_id}]" for h in headers)
