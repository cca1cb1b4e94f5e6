"""Where a benchmarked step's memory and time go: memory breakdown and a one-step profile."""

from __future__ import annotations

from collections.abc import Callable

import torch


def tensor_bytes(tensors) -> int:
    """Bytes held by plain tensors (quantised tensor subclasses count their logical size)."""
    return int(sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor)))


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in the optimizer's state (moments, 8-bit blocks, steps)."""
    total = 0
    for state in optimizer.state.values():
        total += tensor_bytes(v for v in state.values() if isinstance(v, torch.Tensor))
    return total


def cuda_allocated(device: str) -> int | None:
    """Bytes the caching allocator has handed out on ``device`` (None off CUDA)."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.memory_allocated())
    return None


def memory_breakdown(
    *,
    before_model: int | None,
    after_setup: int | None,
    peak: int,
    params: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
) -> dict[str, int | None]:
    """What holds the peak: model weights (frozen base + LoRA), LoRA gradients, optimizer state,
    and activations + temporaries (the rest of the peak: peak minus what was allocated before
    the first step, the gradients and the optimizer state).

    ``before_model`` / ``after_setup`` are ``torch.cuda.memory_allocated()`` readings (None off
    CUDA, where only the tensor sizes are reported). Not "peak minus what was allocated when a
    timed step began": with a CUDA graph, the graph's memory is allocated by then.
    """
    grads = tensor_bytes(p.grad for p in params if p.grad is not None)
    model = None if after_setup is None or before_model is None else after_setup - before_model
    state = optimizer_state_bytes(optimizer)
    activations = None if after_setup is None else peak - after_setup - grads - state
    return {
        "model_weights_bytes": model,
        "lora_parameter_bytes": tensor_bytes(params),
        "lora_gradient_bytes": grads,
        "optimizer_state_bytes": state,
        "activations_and_temporaries_bytes": activations,
        "peak_bytes": peak,
    }


def profile_step(step: Callable[[], None], device: str, *, top: int = 25) -> dict:
    """Profile one call of ``step``: wall time, device-busy time (the kernels' own time, summed)
    and the top operations by host (CPU) time and by device time, JSON-ready, with tables.

    A step whose device-busy time is far below its wall time waits on the host (Python and
    kernel launches): the host table says where that time goes.
    """
    import time

    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = str(device).startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    kernels = [e for e in events if e.device_type == DeviceType.CUDA]
    host = [e for e in events if e.device_type == DeviceType.CPU]
    kernel_us = sum(e.self_device_time_total for e in kernels)

    def rows(items, attr):
        ranked = sorted(items, key=lambda e: getattr(e, attr), reverse=True)[:top]
        return [{"name": e.key[:120], "count": e.count, "self_s": getattr(e, attr) / 1e6} for e in ranked]

    return {
        "wall_s": wall,
        "device_busy_s": kernel_us / 1e6 if cuda else None,
        "host_self_s": sum(e.self_cpu_time_total for e in host) / 1e6,
        "kernel_launches": sum(e.count for e in kernels),
        "top_host_ops": rows(host, "self_cpu_time_total"),
        "top_kernels": rows(kernels, "self_device_time_total") if cuda else [],
        "table": events.table(sort_by="self_cpu_time_total", row_limit=top)
        + ("\n" + events.table(sort_by="self_cuda_time_total", row_limit=top) if cuda else ""),
    }
