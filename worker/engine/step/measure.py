"""Timing and peak-memory readings shared by the benchmarks and the trainer's progress events."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable

import torch


def sync(device: str) -> None:
    """Wait for the device's queued work (a no-op off CUDA)."""
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak(device: str) -> None:
    """Start counting the peak afresh, after giving the allocator's cache back (CUDA only), so the
    reserved peak does not count memory freed before now."""
    if str(device).startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_bytes(device: str) -> int:
    """Most memory allocated at once: on CUDA since the last reset, else the process's peak RSS."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.max_memory_allocated())
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def timed_calls(fn: Callable[[], object], device: str, repeats: int, *, warmup: int = 0) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``fn`` (each waited for on the device), after
    ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times
