"""Each step's global batch and this rank's rows of it.

A step trains ``batch_size x num_processes`` clips (the global batch). Its sample indices are drawn
as one process training the whole global batch would draw them (:func:`step_indices`), and every
rank noises the whole global batch with the shared generator, then keeps its own rows
(:func:`take_rows`): so N processes with ``batch_size`` b compute what one process with
``batch_size`` N x b computes, and a run resumes on another number of processes with the same
global batch and the same data and noise.

With several clip shapes (buckets) a global batch of more than one clip is taken from one bucket,
so the shapes of a step agree across the ranks (and within a batch): each epoch shuffles every
bucket, cuts it into global batches (the last one filled up from the bucket's start) and shuffles
the batches. With one shape, or one clip a step, the order is the single-process order of
:func:`worker.engine.data.dataset.batch_indices`.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import torch

from worker.engine.data.dataset import batch_indices


def step_indices(step: int, global_batch: int, shapes: tuple, seed: int) -> list[int]:
    """Sample indices of the global batch of step ``step`` (0-based); ``shapes``: each sample's shape key."""
    if global_batch == 1 or len(set(shapes)) <= 1:
        return batch_indices(step, global_batch, len(shapes), seed)
    per_epoch = len(_epoch_batches(shapes, global_batch, seed, 0))
    epoch, position = divmod(step, per_epoch)
    return list(_epoch_batches(shapes, global_batch, seed, epoch)[position])


@lru_cache(maxsize=8)
def _epoch_batches(shapes: tuple, global_batch: int, seed: int, epoch: int) -> tuple[tuple[int, ...], ...]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    batches = []
    for shape in sorted(set(shapes), key=repr):
        members = [i for i, s in enumerate(shapes) if s == shape]
        order = [members[i] for i in torch.randperm(len(members), generator=generator).tolist()]
        count = -(-len(order) // global_batch)
        filled = (order * (count * global_batch // len(order) + 1))[:count * global_batch]
        batches += [tuple(filled[k * global_batch:(k + 1) * global_batch]) for k in range(count)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return tuple(batches[i] for i in shuffled)


def rank_slice(rank: int, per_rank: int) -> slice:
    """This rank's rows of a global batch of ``per_rank`` rows per rank."""
    return slice(rank * per_rank, (rank + 1) * per_rank)


def take_rows(obj, rows: slice, batch_rows: int):
    """``obj`` (a dataclass of tensors: a batch or its noised inputs) with only ``rows`` of each
    tensor whose first dimension is the batch (``batch_rows``); other fields unchanged."""
    changes = {}
    for field in dataclasses.fields(obj):
        value = getattr(obj, field.name)
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch_rows:
            changes[field.name] = value[rows]
    return dataclasses.replace(obj, **changes)


def shape_keys(dataset) -> tuple:
    """Each cached sample's shape key (video latent shape, audio latent shape): its bucket."""
    keys = []
    for index in range(len(dataset)):
        sample = dataset[index]
        keys.append((tuple(sample.video.shape), None if sample.audio is None else tuple(sample.audio.shape)))
    return tuple(keys)
