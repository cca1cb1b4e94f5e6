"""``avlora serve`` and ``avlora worker`` on a database they cannot use: both refuse at once with
one line that names it (password hidden) and says what to do; no traceback, no worker "ready"."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.support import PG_ADMIN_URL, ROOT, free_port, stop_process

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"
REFUSAL_S = 30  # a few seconds on a free machine; the test suite shares its cores


def _avlora(command: list[str], env: dict[str, str]) -> tuple[int, str, str, float]:
    """Run ``avlora COMMAND`` to its end (killed, and the test failed, if it keeps running)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "avlora.cli", *command], cwd=ROOT, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=REFUSAL_S)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        out, err = proc.communicate()
        pytest.fail(f"avlora {' '.join(command)} kept running with an unusable database:\n{out[-2000:]}{err[-2000:]}")
    return proc.returncode, out, err, time.monotonic() - started


def _env(tmp_path, database_url: str) -> dict[str, str]:
    return {"AVLORA_DATA_DIR": str(tmp_path / "data"), "AVLORA_DATABASE_URL": database_url,
            "AVLORA_BROKER_URL": "", "AVLORA_MODEL_PRESET": "toy"}


@pytest.mark.parametrize("command", [["serve", "--no-worker"], ["worker"]])
def test_a_database_that_refuses_connections_stops_serve_and_worker(tmp_path, command):
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://root:{PASSWORD}@127.0.0.1:{port}/avlora"
    extra = ["--port", str(free_port())] if command[0] == "serve" else []
    code, out, err, took = _avlora(command + extra, _env(tmp_path, url))
    assert code != 0 and took < REFUSAL_S
    assert err.strip().splitlines() == [
        f"error: cannot reach the database postgresql+psycopg://root:***@127.0.0.1:{port}/avlora "
        "(connection refused): start PostgreSQL or set AVLORA_DATABASE_URL"]
    assert PASSWORD not in out + err and "ready" not in out


def test_a_database_that_does_not_exist_is_named_with_how_to_create_it(tmp_path):
    name = f"avlora_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name, password=PASSWORD)
    for command in (["worker"], ["serve", "--no-worker", "--port", str(free_port())]):
        code, out, err, _ = _avlora(command, _env(tmp_path, url.render_as_string(hide_password=False)))
        assert code != 0
        (line,) = err.strip().splitlines()
        assert line.startswith(f"error: the database '{name}' does not exist on ")
        assert line.endswith(f": create it (createdb {name}) or set AVLORA_DATABASE_URL")
        assert ":***@" in line and PASSWORD not in out + err
