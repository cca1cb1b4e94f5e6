"""The LoRA gradients averaged over two gloo processes (worker/engine/distributed/grads.py):
the mean is exact, buckets start reducing during the backward (overlap), accumulation reduces
once, and a parameter one rank left without a gradient counts as zeros."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from worker.engine.distributed.grads import GradientSync
from worker.engine.distributed.launch import free_port


def _model(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    return torch.nn.Sequential(*[torch.nn.Linear(8, 8) for _ in range(4)])


def _rank(rank: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.set_num_threads(1)
    try:
        model = _model()
        params = list(model.parameters())
        # tiny buckets: several, so the first ones start while the backward is still running
        sync = GradientSync(params, 2, overlap=True, bucket_bytes=8 * 8 * 4 + 8 * 4)
        started_during_backward = []
        first_layer = params[0]
        first_layer.register_hook(lambda grad: started_during_backward.append(len(sync._pending)) or grad)
        inputs = torch.full((2, 8), float(rank + 1))
        model(inputs).pow(2).sum().backward()
        sync.finish()
        grads = [p.grad.clone() for p in params]
        # two micro-steps: only the last one reduces, the sum of both
        model.zero_grad(set_to_none=True)
        sync.enabled = False
        model(inputs).pow(2).sum().backward()
        sync.enabled = True
        model(inputs * 2).pow(2).sum().backward()
        sync.finish()
        accumulated = [p.grad.clone() for p in params]
        # a parameter without a gradient on rank 1 only
        model.zero_grad(set_to_none=True)
        if rank == 0:
            model[3](torch.ones(1, 8)).sum().backward()
        sync.finish()
        results[rank] = (started_during_backward[0], grads, accumulated, model[3].weight.grad.clone())
    finally:
        sync.close()
        dist.destroy_process_group()


def _local(inputs_list):
    model = _model()
    for inputs in inputs_list:
        model(inputs).pow(2).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_two_ranks_get_the_mean_gradient_reduced_while_the_backward_runs():
    results = mp.Manager().dict()
    mp.spawn(_rank, args=(free_port(), results), nprocs=2, join=True)
    started, grads0, accumulated0, lone0 = results[0]
    _, grads1, accumulated1, lone1 = results[1]
    assert started >= 1  # a bucket of the last layers was already reducing when the first layer's grad came
    want = [(a + b) / 2 for a, b in zip(_local([torch.full((2, 8), 1.0)]), _local([torch.full((2, 8), 2.0)]),
                                         strict=True)]
    for got0, got1, expected in zip(grads0, grads1, want, strict=True):
        assert torch.equal(got0, got1) and torch.allclose(got0, expected, rtol=1e-6, atol=1e-6)
    both = [(a + b) / 2 for a, b in zip(_local([torch.full((2, 8), 1.0), torch.full((2, 8), 2.0)]),
                                         _local([torch.full((2, 8), 2.0), torch.full((2, 8), 4.0)]), strict=True)]
    for got0, got1, expected in zip(accumulated0, accumulated1, both, strict=True):
        assert torch.equal(got0, got1) and torch.allclose(got0, expected, rtol=1e-6, atol=1e-6)
    assert torch.equal(lone0, lone1) and torch.allclose(lone0, torch.full((8, 8), 0.5))
