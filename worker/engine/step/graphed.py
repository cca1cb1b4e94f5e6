"""Whole-step CUDA graphs: a training step's forward, losses and backward captured once per clip
shape, then replayed.

At 512x512x49 the full-size step issues about 15,000 kernel launches (48 blocks, forward,
checkpoint recompute and backward) and the GPU waits on the host for most of the step
(docs/benchmarks.md). A CUDA graph records those launches once; each later step is one replay,
and the host only draws the step's noise, copies it into the graph's input buffers and runs the
optimizer. The numbers are the same as the eager step's (the same kernels, in the same order).

What a replayed step needs, and how this module provides it:

- static shapes: one graph per *signature* (every input tensor's shape and dtype, and whether
  the text mask is passed); the inputs of each step are copied into that graph's buffers;
- no host work inside the forward: the RoPE coordinates are computed before it
  (:func:`worker.engine.step.flow.with_rope_coords`), the all-ones text mask is dropped before it, and
  checkpointing keeps no RNG state when nothing is random
  (:func:`worker.engine.step.checkpointing.enable_activation_checkpointing`);
- warm-up before capture: compilation, autotuning and library handles happen in ordinary
  steps on a side stream, never during the capture;
- gradients: the captured backward writes each LoRA gradient into memory the graph owns; after
  every replay the parameters' ``.grad`` point at it again (a ``zero_grad(set_to_none=True)``
  between steps is harmless), and each replay overwrites, never accumulates.

The optimizer, gradient clipping and the learning-rate schedule stay outside the graph, so they
work as in the eager step (a schedule changing the learning rate every step included).

``capture=False`` runs the same bookkeeping (static buffers, one entry per signature, gradients
handed back) with the step run eagerly on the buffers: the CPU tests check the plumbing that way,
and the GPU test (``tests/gpu``) checks that a replay equals the eager step.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch

from worker.engine.step.flow import FlowBatch, FlowInputs, StepLosses

# forward_backward(batch, inputs) -> the step's losses, after calling backward on their total
StepFunction = Callable[[FlowBatch, FlowInputs], StepLosses]


class GraphUnavailable(RuntimeError):
    """This step cannot run as a CUDA graph; the message says why (the caller runs it eagerly).

    ``permanent``: no step of this run can (the capture failed), not just this one (a new shape).
    """

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


def _tensor_fields(obj) -> dict[str, torch.Tensor | None]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)
            if isinstance(getattr(obj, f.name), torch.Tensor) or getattr(obj, f.name) is None}


def step_signature(batch: FlowBatch, inputs: FlowInputs) -> tuple:
    """What a graph is specialised to: each tensor's shape, dtype and device (None where absent),
    and the batch's non-tensor fields. Two steps with the same signature can share one graph."""
    parts = []
    for obj in (batch, inputs):
        for name, value in _tensor_fields(obj).items():
            parts.append((name, None) if value is None else (name, tuple(value.shape), value.dtype, value.device))
    scalars = tuple((f.name, getattr(batch, f.name)) for f in fields(batch)
                    if not isinstance(getattr(batch, f.name), torch.Tensor) and getattr(batch, f.name) is not None
                    and f.name != "fps")  # fps reaches the model only through the coordinates (a tensor)
    return tuple(parts) + scalars


def _static_copy(obj):
    """``obj`` (a FlowBatch or FlowInputs) with every tensor field replaced by a fresh copy."""
    return replace(obj, **{name: value.clone() for name, value in _tensor_fields(obj).items() if value is not None})


def _load(static, new) -> None:
    for name, value in _tensor_fields(new).items():
        if value is not None:
            getattr(static, name).copy_(value)


def clear_grads(params: list[torch.nn.Parameter]) -> None:
    for param in params:
        param.grad = None


@dataclass
class _Entry:
    batch: FlowBatch
    inputs: FlowInputs
    graph: torch.cuda.CUDAGraph | None = None
    losses: StepLosses | None = None
    grads: list[torch.Tensor | None] | None = None


class GraphedStep:
    """Run ``forward_backward`` as a CUDA graph per step signature (see the module docstring).

    ``params``: the trainable parameters (their gradients are the step's output besides the
    losses). ``max_graphs``: how many signatures may be captured; each graph keeps its
    activations' memory for as long as it lives, so a step with a new signature beyond the limit
    raises :class:`GraphUnavailable` (the caller runs it eagerly). When a further graph does not
    fit in memory, the limit drops to the graphs already recorded; when the first does not, the
    out-of-memory error is the caller's (the step itself does not fit). ``warmup``: eager steps on a side stream before a capture
    (the first compiles the blocks).
    """

    def __init__(self, forward_backward: StepFunction, params: list[torch.nn.Parameter], *,
                 capture: bool = True, max_graphs: int = 1, warmup: int = 2):
        if capture and not torch.cuda.is_available():
            raise GraphUnavailable("CUDA graphs need a CUDA GPU", permanent=True)
        self.forward_backward = forward_backward
        self.params = params
        self.capture = capture
        self.max_graphs = max_graphs
        self.warmup = warmup
        self._entries: dict[tuple, _Entry] = {}
        self.captures = 0  # how many graphs were recorded (a test and the bench read it)

    def __call__(self, batch: FlowBatch, inputs: FlowInputs) -> StepLosses:
        """One step: losses (fresh tensors, safe to keep) and the gradients in ``params``' ``.grad``."""
        key = step_signature(batch, inputs)
        entry = self._entries.get(key)
        if entry is None:
            if len(self._entries) >= self.max_graphs:
                raise GraphUnavailable(
                    f"a step with a new shape, beyond the {self.max_graphs} graph(s) allowed: run it eagerly"
                )
            entry = self._entries[key] = _Entry(_static_copy(batch), _static_copy(inputs))
            if self.capture:
                try:
                    self._record(entry)
                except Exception as exc:
                    del self._entries[key]
                    clear_grads(self.params)
                    self._free_cache()
                    if isinstance(exc, torch.OutOfMemoryError):
                        if not self._entries:
                            raise  # the step does not fit, graph or not
                        # the graphs recorded so far hold their memory: no room for one more
                        self.max_graphs = len(self._entries)
                        raise GraphUnavailable(
                            f"no memory for a CUDA graph of another clip shape beyond {self.max_graphs}: "
                            "steps of other shapes run eagerly"
                        ) from exc
                    raise GraphUnavailable(f"CUDA graph capture failed: {type(exc).__name__}: {exc}",
                                           permanent=True) from exc
        _load(entry.batch, batch)
        _load(entry.inputs, inputs)
        if self.capture:
            entry.graph.replay()
        else:
            clear_grads(self.params)  # a replay overwrites the gradients; so does this
            entry.losses = self.forward_backward(entry.batch, entry.inputs)
            entry.grads = [p.grad for p in self.params]
        for param, grad in zip(self.params, entry.grads):
            param.grad = grad
        losses = entry.losses
        return StepLosses(
            total=losses.total.detach().clone(),
            video_loss=None if losses.video_loss is None else losses.video_loss.clone(),
            audio_loss=None if losses.audio_loss is None else losses.audio_loss.clone(),
        )

    def _record(self, entry: _Entry) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                clear_grads(self.params)
                self.forward_backward(entry.batch, entry.inputs)
        torch.cuda.current_stream().wait_stream(side)
        torch.cuda.synchronize()
        clear_grads(self.params)
        self._free_cache()  # the warm-up's activations go back before the graph takes its own
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            losses = self.forward_backward(entry.batch, entry.inputs)
        entry.graph = graph
        entry.losses = StepLosses(total=losses.total.detach(), video_loss=losses.video_loss,
                                  audio_loss=losses.audio_loss)
        entry.grads = [p.grad for p in self.params]
        self.captures += 1

    @staticmethod
    def _free_cache() -> None:
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def release(self) -> None:
        """Free every graph and its memory (before sampling, say); the next step records again
        (after one warm-up step: the blocks are compiled by then)."""
        self._entries.clear()
        self.warmup = min(self.warmup, 1)
        clear_grads(self.params)
        self._free_cache()
