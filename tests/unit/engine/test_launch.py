"""The ranks' launcher (worker/engine/distributed/launch.py) with plain processes: a rank outlives
no launcher (a worker killed with SIGKILL leaves no rank holding a GPU), and how an ending is told."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from worker.engine.distributed.launch import LaunchResult, RankProcesses

RANK = """
import sys, time
from worker.engine.distributed.launch import exit_with_launcher
exit_with_launcher(poll_s=0.1)
print("ready", flush=True)
time.sleep(120)
"""

LAUNCHER = """
import subprocess, sys, time
from pathlib import Path
from worker.engine.distributed.launch import RankProcesses
ranks = RankProcesses([sys.executable, "-c", sys.argv[1]], 2, Path(sys.argv[2]), rank0_stdout=subprocess.PIPE)
assert ranks.procs[0].stdout.readline().strip() == b"ready"
print(" ".join(str(p.pid) for p in ranks.procs), flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_ranks_end_when_their_launcher_is_killed(tmp_path):
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, RANK, str(tmp_path)], stdout=subprocess.PIPE,
                                text=True, cwd=Path(__file__).resolve().parents[3])
    pids = [int(p) for p in launcher.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids), "a rank outlived its launcher"


def test_a_rank_that_fails_alone_is_named_and_rank_0s_error_is_the_message(tmp_path):
    script = ("import os, sys\nrank = int(os.environ['RANK'])\n"
              "print('error: the cache is gone', file=sys.stderr) if rank == 0 else None\nsys.exit(2 if rank == 0 else 0)")
    ended = RankProcesses([sys.executable, "-c", script], 2, tmp_path, rank0_stdout=subprocess.PIPE).wait()
    assert (ended.status, ended.returncode, ended.message) == ("failed", 2, "the cache is gone")
    killer = "import os, signal, time\nif os.environ['RANK'] == '1': os.kill(os.getpid(), signal.SIGKILL)\ntime.sleep(60)"
    started = time.monotonic()
    ended = RankProcesses([sys.executable, "-c", killer], 2, tmp_path / "k", rank0_stdout=subprocess.PIPE).wait()
    assert isinstance(ended, LaunchResult) and ended.status == "interrupted" and time.monotonic() - started < 15
    assert ended.message.startswith("rank 1 was killed by SIGKILL; the other ranks were ended.")
