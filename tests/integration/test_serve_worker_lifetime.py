"""The embedded worker never outlives `avlora serve`, even when the studio process is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support import ROOT, celery_processes_of, free_port, stop_process

pytestmark = pytest.mark.integration


def test_killing_the_studio_stops_its_worker(studio_env, tmp_path):
    port = free_port()
    with open(tmp_path / "serve.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "avlora.cli", "serve", "--port", str(port)], cwd=ROOT,
                                env={**os.environ, **studio_env}, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    data_dir = studio_env["AVLORA_DATA_DIR"]
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200 \
                        and celery_processes_of(data_dir):
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert celery_processes_of(data_dir), (tmp_path / "serve.log").read_text()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)  # no clean-up code runs in the studio process
        proc.wait(timeout=10)
        deadline = time.monotonic() + 30
        while celery_processes_of(data_dir) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert celery_processes_of(data_dir) == []
    finally:
        stop_process(proc)
        for pid in celery_processes_of(data_dir):
            os.kill(pid, signal.SIGKILL)
