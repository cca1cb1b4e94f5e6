"""`avlora serve`'s supervisor with a real child process: a worker that dies is started again
(1 s, then 2 s, ... later), with a line saying how it ended; a stop the studio asks for is not a
crash: nothing restarts and nothing is reported."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

from avlora.supervisor import WorkerSupervisor, restart_delay_s

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is not alive
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.fixture
def supervisor(migrated_env):
    lines: list[str] = []
    sup = WorkerSupervisor(SLEEPER, ["cpu", "gpu"], report=lines.append)
    sup.lines = lines
    yield sup
    sup.stop(timeout_s=2)


def test_the_back_off_grows_to_a_minute():
    assert [restart_delay_s(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def test_a_killed_worker_is_started_again_with_a_line_saying_how_it_ended(supervisor):
    from core.services.workers import embedded_worker

    supervisor.start()
    first = supervisor.pid
    assert embedded_worker().queues == {"cpu", "gpu"} and embedded_worker().ended is None
    os.killpg(first, signal.SIGKILL)  # as the OOM killer would, its whole group
    second = _wait(lambda: supervisor.pid != first and supervisor.pid, 5, "a new worker")
    assert _alive(second)
    assert len(supervisor.lines) == 1
    assert re.fullmatch(r"the studio's worker ended \(killed by SIGKILL\) after \d+ s; starting it again in 1 s",
                        supervisor.lines[0])
    assert embedded_worker().ended == "killed by SIGKILL"  # what a queued job says meanwhile

    os.kill(second, signal.SIGTERM)  # ends again right away: the wait doubles
    third = _wait(lambda: supervisor.pid != second and supervisor.pid, 5, "a third worker")
    assert re.fullmatch(r"the studio's worker ended \(killed by SIGTERM\) after \d+ s; starting it again in 2 s",
                        supervisor.lines[1])
    assert _alive(third)


def test_stopping_the_studio_stops_its_worker_without_a_restart_or_a_complaint(supervisor):
    from core.services.workers import embedded_worker

    supervisor.start()
    pid = supervisor.pid
    supervisor.stop(timeout_s=5)
    assert not _alive(pid)
    time.sleep(1.5)  # longer than the first restart delay
    assert supervisor.pid == pid and supervisor.lines == []
    assert embedded_worker() is None


def test_a_worker_ended_while_the_studio_shuts_down_is_not_started_again(supervisor):
    """systemd and docker signal every process of the service: the worker ends with the studio,
    and a restart in the middle of the studio's shutdown would outlive it."""
    supervisor.start()
    pid = supervisor.pid
    supervisor.stop_restarting()  # what the studio's signal handler does first
    os.killpg(pid, signal.SIGTERM)
    _wait(lambda: not _alive(pid), 5, "the worker to end")
    time.sleep(1.5)  # longer than the first restart delay
    assert supervisor.pid == pid and supervisor.lines == []
