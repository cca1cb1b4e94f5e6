"""The GPUs of this host a job may use, reserved with one lock file per GPU.

Several GPU workers may share a host (one per GPU is the usual set-up: ``CUDA_VISIBLE_DEVICES=K
avlora worker --queues gpu``). A run on N processes needs N GPUs of one host: the worker that takes
it reserves its own GPUs first, then free ones of its siblings; a GPU is taken by holding an
exclusive ``flock`` on ``LOCK_DIR/gpu-K.lock`` (released by the kernel when the holder dies, so a
killed worker never leaves a GPU reserved). The reservation is all or nothing: a job that cannot
have every GPU it needs holds none and waits (:func:`wait_for_gpus`), its job row saying for what.
A worker running a one-GPU job holds the lock of its own GPU, so no multi-GPU run takes that GPU
from under it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

NVIDIA_SMI_TIMEOUT_S = 10
WAIT_POLL_S = 5.0


def lock_dir() -> Path:
    """Where this host's GPU locks live (``AVLORA_GPU_LOCK_DIR``, else the host's temp folder)."""
    return Path(os.environ.get("AVLORA_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / "avlora-gpu-locks")


def host_gpu_indices() -> list[int]:
    """Every GPU of this host by its physical index (``nvidia-smi``, which ignores
    ``CUDA_VISIBLE_DEVICES``); empty on a host without NVIDIA GPUs."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=NVIDIA_SMI_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [int(line) for line in out.split() if line.strip().isdigit()]


def own_gpu_indices(host: list[int], environ=None) -> list[int]:
    """The GPUs this worker was given (``CUDA_VISIBLE_DEVICES`` as physical indices), else all."""
    visible = (os.environ if environ is None else environ).get("CUDA_VISIBLE_DEVICES")
    if visible is None or not all(p.strip().isdigit() for p in visible.split(",") if p.strip()):
        return list(host)
    return [int(p) for p in visible.split(",") if p.strip() and int(p) in host]


class GpuReservation:
    """GPUs held by this process until :meth:`release` (or its death)."""

    def __init__(self, indices: list[int], handles: list):
        self.indices, self._handles = indices, handles

    @property
    def visible_devices(self) -> str:
        """The ``CUDA_VISIBLE_DEVICES`` value of the processes that use them."""
        return ",".join(str(i) for i in self.indices)

    def release(self) -> None:
        for handle in self._handles:
            handle.close()  # closing the file drops its flock
        self._handles = []

    def __enter__(self) -> GpuReservation:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(directory: Path, index: int) -> str:
    try:
        return (directory / f"gpu-{index}.lock").read_text().strip()
    except OSError:
        return ""


def try_reserve(needed: int, own: list[int], host: list[int], *, holder: str,
                directory: Path | None = None) -> GpuReservation | None:
    """``needed`` GPUs of ``host`` (``own`` first), all or none; None when fewer are free."""
    directory = directory or lock_dir()
    directory.mkdir(parents=True, exist_ok=True)
    taken, handles = [], []
    for index in own + [i for i in host if i not in own]:
        if len(taken) == needed:
            break
        handle = open(directory / f"gpu-{index}.lock", "a+")  # noqa: SIM115 - held until release
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.truncate(0)
        handle.write(holder)
        handle.flush()
        taken.append(index)
        handles.append(handle)
    reservation = GpuReservation(taken, handles)
    if len(taken) < needed:
        reservation.release()
        return None
    return reservation


def busy_message(needed: int, host: list[int], directory: Path | None = None) -> str:
    """Why ``needed`` GPUs are not free now: which GPUs hold which job."""
    directory = directory or lock_dir()
    busy = [f"GPU {i}: {_holder(directory, i) or 'busy'}" for i in host if _is_locked(directory, i)]
    return (f"waiting for {needed} free GPUs on this host ({len(host) - len(busy)} of {len(host)} free"
            + (f"; {', '.join(busy)}" if busy else "") + ")")


def _is_locked(directory: Path, index: int) -> bool:
    path = directory / f"gpu-{index}.lock"
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False


def wait_for_gpus(needed: int, own: list[int], host: list[int], *, holder: str, on_wait: Callable[[str], None],
                  cancelled: Callable[[], bool], directory: Path | None = None,
                  poll_s: float = WAIT_POLL_S) -> GpuReservation | None:
    """Reserve ``needed`` GPUs, waiting (and saying so through ``on_wait``) while they are busy;
    None when ``cancelled()`` turns true first. Refuses at once a host that has too few."""
    if len(host) < needed:
        raise ValueError(f"this run needs {needed} GPUs; this host has {len(host)}: lower num_processes, "
                         f"or start a worker on a host with {needed} GPUs")
    said = None
    while not cancelled():
        reservation = try_reserve(needed, own, host, holder=holder, directory=directory)
        if reservation is not None:
            return reservation
        message = busy_message(needed, host, directory)
        if message != said:
            on_wait(message)
            said = message
        time.sleep(poll_s)
    return None
