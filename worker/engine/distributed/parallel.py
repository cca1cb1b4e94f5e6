"""What a training step does differently on several processes, behind one interface.

:class:`SingleProcess` is the one-process run (every method a no-op); :class:`DataParallel` joins
the ranks (:mod:`.group`), averages the LoRA gradients (:mod:`.grads`) and shards each global batch
(:mod:`.shards`). The trainer calls the same methods either way.
"""

from __future__ import annotations

import dataclasses

import torch

from worker.engine.distributed.grads import GradientSync
from worker.engine.distributed.group import RankGroup, RankInfo
from worker.engine.distributed.shards import rank_slice, take_rows


class SingleProcess:
    """One process trains the whole batch."""

    rank, world, is_main = 0, 1, True

    def shard(self, batch, inputs, indices: list[int], per_rank: int):  # noqa: ARG002 - DataParallel's signature
        """This rank's rows of a global batch, its noised inputs and its sample indices."""
        return batch, inputs, indices

    def accumulating(self, last_micro_step: bool) -> None:
        """Before a micro-step's backward: whether its gradients are the step's last."""

    def finish_gradients(self) -> None:
        """After the step's backward(s): every rank's gradients averaged into each."""

    def agree(self, flags: list[bool]) -> list[bool]:
        """Rank 0's decisions (stop, ...), on every rank."""
        return flags

    def mean(self, values: list[float | None]) -> list[float | None]:
        """The mean of each value over the ranks."""
        return values

    def close(self) -> None:
        """Leave the process group."""


class DataParallel(SingleProcess):
    """Rank ``info.rank`` of ``info.world`` processes training one run."""

    def __init__(self, info: RankInfo, device: str, params: list[torch.nn.Parameter], *, overlap: bool):
        self.info = info
        self.rank, self.world, self.is_main = info.rank, info.world, info.is_main
        self.group = RankGroup(info, device)
        self.gradients = GradientSync(params, info.world, overlap=overlap)

    def shard(self, batch, inputs, indices: list[int], per_rank: int):
        rows = rank_slice(self.rank, per_rank)
        total = per_rank * self.world
        mine = take_rows(inputs, rows, total)
        mask = inputs.video_loss_mask
        if mask is not None:  # first-frame conditioning leaves each clip its own count of scored tokens
            scored = mask.sum().clamp(min=1).float()
            weight = mask[rows].sum().float() * self.world / scored
            mine = dataclasses.replace(mine, video_loss_weight=weight)
        return take_rows(batch, rows, total), mine, indices[rows]

    def accumulating(self, last_micro_step: bool) -> None:
        self.gradients.enabled = last_micro_step

    def finish_gradients(self) -> None:
        self.gradients.finish()

    def agree(self, flags: list[bool]) -> list[bool]:
        return self.group.agree(flags)

    def mean(self, values: list[float | None]) -> list[float | None]:
        return self.group.mean(values)

    def close(self) -> None:
        self.gradients.close()
        self.group.close()
