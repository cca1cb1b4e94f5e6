"""The LoRA gradients averaged over the ranks (data parallelism over the small trainable part).

The frozen base is replicated on every rank and has no gradient; only the LoRA parameters do. They
are grouped into buckets of about :data:`BUCKET_BYTES`, in the order the backward produces them
(the last layers first). With ``overlap`` a bucket's all-reduce starts, asynchronously, the moment
its last gradient is accumulated (a post-accumulate-grad hook), so the communication runs while
the backward computes the earlier layers; :meth:`GradientSync.finish` waits for them, averages and
writes the result back before the gradient is clipped. Without ``overlap`` (a step replayed as a
CUDA graph, whose capture must not hold a collective) every bucket is reduced after the backward.

Gradients are summed in float32 whatever the LoRA's dtype. A parameter the backward left without a
gradient on this rank counts as zeros, so the buckets agree across ranks.
"""

from __future__ import annotations

import torch

BUCKET_BYTES = 25 * 1024 * 1024


class GradientSync:
    """Average ``params``' gradients over the ranks of ``group`` (a :class:`~.group.RankGroup`)."""

    def __init__(self, params: list[torch.nn.Parameter], world: int, *, overlap: bool = True,
                 bucket_bytes: int = BUCKET_BYTES):
        import torch.distributed as dist

        self._dist, self.world, self.overlap = dist, world, overlap
        self.enabled = True  # False on the micro-steps before the last of an accumulation
        self.buckets: list[list[torch.nn.Parameter]] = []
        size = bucket_bytes + 1
        for param in reversed(params):
            if size + param.numel() * 4 > bucket_bytes and (not self.buckets or self.buckets[-1]):
                self.buckets.append([])
                size = 0
            self.buckets[-1].append(param)
            size += param.numel() * 4
        self._bucket_of = {id(p): b for b, bucket in enumerate(self.buckets) for p in bucket}
        self._hooks = [p.register_post_accumulate_grad_hook(self._ready) for p in params] if overlap else []
        self._reset()

    def _reset(self) -> None:
        self._left = [len(bucket) for bucket in self.buckets]
        self._pending: dict[int, tuple[torch.Tensor, object]] = {}

    def _ready(self, param: torch.nn.Parameter) -> None:
        if not self.enabled:
            return
        index = self._bucket_of[id(param)]
        self._left[index] -= 1
        if self._left[index] == 0:
            self._launch(index)

    def _launch(self, index: int) -> None:
        bucket = self.buckets[index]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
                          for p in bucket])
        self._pending[index] = (flat, self._dist.all_reduce(flat, async_op=True))

    def finish(self) -> None:
        """Wait for every bucket (starting those the hooks did not), then write the mean back."""
        for index in range(len(self.buckets)):
            if index not in self._pending:
                self._launch(index)
        for index, (flat, work) in sorted(self._pending.items()):
            work.wait()
            flat.div_(self.world)
            offset = 0
            for param in self.buckets[index]:
                count = param.numel()
                mean = flat[offset:offset + count].view_as(param).to(param.dtype)
                if param.grad is None:
                    param.grad = mean.clone()
                else:
                    param.grad.copy_(mean)
                offset += count
        self._reset()

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []
