"""The ranks of one data-parallel run and what they agree on.

A run started by :mod:`worker.engine.distributed.launch` (or by ``torchrun``) finds ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` in its environment;
:func:`rank_from_env` reads them and :class:`RankGroup` joins the process group (NCCL between
GPUs, gloo on the CPU). Every rank holds the same frozen base and the same LoRA (same seed, same
averaged gradients, same optimizer), so rank 0 alone writes checkpoints and samples, reports
progress and hears a cancel; :meth:`RankGroup.agree` hands its decisions to the others at each step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch

# Rank 0 may sample for many minutes while the others wait in the next collective.
COLLECTIVE_TIMEOUT = timedelta(hours=3)


@dataclass(frozen=True)
class RankInfo:
    """This process's place in the run: ``rank`` of ``world``, ``local_rank`` on its host."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_from_env(environ=None) -> RankInfo | None:
    """The rank this process was started as, or None outside a run of several processes."""
    environ = os.environ if environ is None else environ
    world = int(environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return None
    rank = int(environ["RANK"])
    return RankInfo(rank=rank, world=world, local_rank=int(environ.get("LOCAL_RANK", rank)))


def rank_device(info: RankInfo, device: str) -> str:
    """The device of this rank: its own GPU (``cuda:LOCAL_RANK``) on CUDA, else ``device``."""
    if device.startswith("cuda"):
        torch.cuda.set_device(info.local_rank)
        return f"cuda:{info.local_rank}"
    return device


class RankGroup:
    """The joined process group: small collectives the trainer needs besides the gradients."""

    def __init__(self, info: RankInfo, device: str):
        import torch.distributed as dist

        self.info, self.device = info, device
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if not dist.is_initialized():
            dist.init_process_group(backend, rank=info.rank, world_size=info.world, timeout=COLLECTIVE_TIMEOUT)
        self._dist = dist

    @property
    def world(self) -> int:
        return self.info.world

    def agree(self, flags: list[bool]) -> list[bool]:
        """Rank 0's ``flags``, on every rank (what the others pass is ignored)."""
        tensor = torch.tensor([int(f) for f in flags], dtype=torch.int32, device=self.device)
        self._dist.broadcast(tensor, src=0)
        return [bool(v) for v in tensor.tolist()]

    def mean(self, values: list[float | None]) -> list[float | None]:
        """The mean over the ranks of each value; None stays None (every rank has the same Nones)."""
        present = [v for v in values if v is not None]
        if not present:
            return list(values)
        tensor = torch.tensor(present, dtype=torch.float64, device=self.device)
        self._dist.all_reduce(tensor)
        means = iter((tensor / self.world).tolist())
        return [None if v is None else next(means) for v in values]

    def barrier(self) -> None:
        self._dist.barrier()

    def close(self) -> None:
        if self._dist.is_initialized():
            self._dist.destroy_process_group()
