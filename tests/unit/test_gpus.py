"""Reserving GPUs of a host for a run on several processes (worker/gpus.py): real lock files,
held by real processes. The GPU indices are the host's physical ones; no GPU is touched."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from worker.gpus import busy_message, own_gpu_indices, try_reserve, wait_for_gpus

HOLD = """
import sys, time
from pathlib import Path
from worker.gpus import try_reserve
held = try_reserve(int(sys.argv[2]), [int(i) for i in sys.argv[3].split(",")], [0, 1, 2, 3],
                   holder="job #7 (run #3)", directory=Path(sys.argv[1]))
print("held" if held else "none", flush=True)
time.sleep(600)
"""


def _holder(tmp_path, needed: int, own: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path), str(needed), own], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_worker_takes_its_own_gpus_first_then_free_ones_all_or_none(tmp_path):
    first = try_reserve(2, [2], [0, 1, 2, 3], holder="job #1", directory=tmp_path)
    assert first.indices == [2, 0] and first.visible_devices == "2,0"
    assert try_reserve(3, [1], [0, 1, 2, 3], holder="job #2", directory=tmp_path) is None  # 2 free: none held
    second = try_reserve(2, [1], [0, 1, 2, 3], holder="job #2", directory=tmp_path)
    assert second.indices == [1, 3]
    first.release()
    assert try_reserve(2, [0], [0, 1, 2, 3], holder="job #3", directory=tmp_path).indices == [0, 2]


def test_gpus_held_by_another_process_are_busy_until_it_dies(tmp_path):
    holder = _holder(tmp_path, 3, "0")
    try:
        assert try_reserve(2, [3], [0, 1, 2, 3], holder="job #8", directory=tmp_path) is None
        message = busy_message(2, [0, 1, 2, 3], tmp_path)
        assert message.startswith("waiting for 2 free GPUs on this host (1 of 4 free")
        assert "GPU 0: job #7 (run #3)" in message and "GPU 3" not in message
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed worker's GPUs are free again: the kernel drops its locks
        holder.wait()
    assert try_reserve(2, [3], [0, 1, 2, 3], holder="job #8", directory=tmp_path).indices == [3, 0]


def test_a_job_waits_visibly_for_busy_gpus_and_a_cancel_ends_the_wait(tmp_path):
    holder = _holder(tmp_path, 4, "0")
    said, started = [], time.monotonic()
    try:
        got = wait_for_gpus(2, [0], [0, 1, 2, 3], holder="job #9", on_wait=said.append, directory=tmp_path,
                            cancelled=lambda: time.monotonic() - started > 0.5, poll_s=0.05)
    finally:
        holder.kill()
        holder.wait()
    assert got is None and said == ["waiting for 2 free GPUs on this host (0 of 4 free; GPU 0: job #7 (run #3), "
                                    "GPU 1: job #7 (run #3), GPU 2: job #7 (run #3), GPU 3: job #7 (run #3))"]
    with pytest.raises(ValueError, match="needs 2 GPUs; this host has 1"):
        wait_for_gpus(2, [0], [0], holder="job #9", on_wait=said.append, cancelled=lambda: False, directory=tmp_path)


def test_own_gpus_are_the_visible_devices_of_the_worker():
    assert own_gpu_indices([0, 1, 2, 3], {"CUDA_VISIBLE_DEVICES": "2,3"}) == [2, 3]
    assert own_gpu_indices([0, 1], {}) == [0, 1]
    assert own_gpu_indices([0, 1], {"CUDA_VISIBLE_DEVICES": "GPU-uuid"}) == [0, 1]
