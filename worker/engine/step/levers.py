"""Speed levers of the LoRA training step that leave its results unchanged (within rounding).

The levers that cost no memory are on by default in the engine (``avlora train``, ``avlora bench
train``) and can be switched off (``bench train --baseline`` switches them off: the straightforward
diffusers + peft step); selective checkpointing, which trades memory for speed, is opt-in.
``tests/unit/engine/test_levers*.py`` check each one leaves the losses and the LoRA gradients
equal within tolerance.

- ``lora_compute_in_base_dtype``: PEFT casts every LoRA layer's *input activation* to the LoRA
  weights' float32 (and the result back), i.e. two full-size activation copies per adapted layer
  and float32 activations saved for the backward. Instead the small LoRA weights are cast to the
  activation dtype (bf16) inside the forward; the float32 master weights, their gradients and the
  optimizer state stay float32, as in ordinary mixed-precision training.
- ``drop_all_ones_text_mask``: the connector output has no padding (its mask is all ones), but a
  mask, even of ones, can keep SDPA off its flash kernel for the text cross-attention. An all-ones
  mask is passed as ``None`` (the same attention). On an H100 with torch 2.11, cuDNN attention
  ran either way (docs/benchmarks.md).
- fused AdamW (:func:`worker.engine.step.optim.build_optimizer`, ``fused=True`` on CUDA): one kernel
  for all LoRA tensors instead of a handful per tensor.
- regional ``torch.compile`` (:mod:`worker.engine.step.compiling`), on CUDA only.
- activation checkpointing and its policies: :mod:`worker.engine.step.checkpointing`.

:mod:`worker.engine.step.setup` decides the levers of a run or a benchmark and sets them up on the
transformer, the same way for both.
- ``cuda_graph``: the step's forward, losses and backward recorded once per clip shape as a CUDA
  graph and replayed (:mod:`worker.engine.step.graphed`): the host no longer launches the step's
  kernels one by one. CUDA only, one graph per clip shape, no gradient accumulation; the caller decides.
- ``cast_lora_weights_once``: within one training step, each LoRA weight is cast to the compute
  dtype once (and the cast reused by the forward and the checkpoint recompute) instead of at
  every call. On by default (the same numbers; one bf16 copy of the LoRA weights per step).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.names import CheckpointPolicy


@dataclass(frozen=True)
class StepLevers:
    """Which levers a training step uses (defaults: the engine's)."""

    lora_in_base_dtype: bool = True
    drop_all_ones_text_mask: bool = True
    fused_optimizer: bool = True
    compile_blocks: bool = False  # decided per device by the caller (GPU only)
    checkpointing_policy: CheckpointPolicy = "full"  # what the checkpoint recompute redoes
    checkpointing_ratio: float = 1.0  # share of the blocks that take checkpointing_policy
    checkpointing_rest_policy: CheckpointPolicy = "full"  # the other blocks' policy
    cast_lora_weights_once: bool = True  # one bf16 copy of each LoRA weight per step
    compile_mode: str | None = None  # torch.compile mode of the blocks (None, or "reduce-overhead")
    cuda_graph: bool = False  # whole-step CUDA graph (worker.engine.step.graphed); decided per run by the caller
    memory_budget: float | None = None  # compiled blocks pick their own recompute (compiling.py); None: off

    @classmethod
    def baseline(cls) -> StepLevers:
        """No lever: the step as a straightforward diffusers + peft trainer writes it."""
        return cls(lora_in_base_dtype=False, drop_all_ones_text_mask=False, fused_optimizer=False,
                   compile_blocks=False, cast_lora_weights_once=False)

    def weight_cast(self, transformer: torch.nn.Module, dtype: torch.dtype):
        """The context one step's forward and backward run in (:func:`cast_lora_weights_once`
        when that lever is on, else a no-op)."""
        if self.cast_lora_weights_once and self.lora_in_base_dtype:
            return cast_lora_weights_once(transformer, dtype)
        return contextlib.nullcontext(0)


class _WeightCastingLinear(torch.nn.Linear):
    """A LoRA ``lora_A`` / ``lora_B`` Linear that casts its (small) weight to the input's dtype.

    The cast is part of the autograd graph, so the float32 master weight still gets a float32
    gradient. State-dict keys and parameters are those of ``torch.nn.Linear``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.__dict__.get("step_weight")  # set by cast_lora_weights_once for one step
        if weight is None or weight.dtype != x.dtype:
            weight = self.weight.to(x.dtype)
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, weight, bias)


def lora_compute_in_base_dtype(transformer: torch.nn.Module) -> int:
    """Run every PEFT LoRA layer's math in the activations' dtype; returns the layers changed.

    Turns PEFT's input cast off (``cast_input_dtype_enabled = False``) and makes each
    ``lora_A`` / ``lora_B`` cast its weight instead. A no-op in numbers when the base model is
    float32 (the CPU default).
    """
    from worker.engine.lora.adapters import lora_layers

    count = 0
    for _, layer in lora_layers(transformer):
        layer.cast_input_dtype_enabled = False
        for container in (layer.lora_A, layer.lora_B):
            for linear in container.values():
                if type(linear) is torch.nn.Linear:
                    linear.__class__ = _WeightCastingLinear
        count += 1
    return count


def text_mask_or_none(mask: torch.Tensor | None) -> torch.Tensor | None:
    """``None`` when ``mask`` keeps every token (so SDPA may use flash attention), else ``mask``.

    Reading the mask's values waits for the device once per step, before the forward starts.
    """
    if mask is None or bool(mask.bool().all()):
        return None
    return mask


def sdpa_backends_used(fn) -> dict[str, int]:
    """Run ``fn()`` under the profiler; count the SDPA implementations that ran, by name.

    Keys are the aten op names without the ``aten::_scaled_dot_product_`` prefix, e.g.
    ``flash_attention``, ``efficient_attention``, ``cudnn_attention``, ``attention_math``,
    ``flash_attention_for_cpu``.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    counts: dict[str, int] = {}
    prefix = "aten::_scaled_dot_product_"
    for event in prof.key_averages():
        if event.key.startswith(prefix) and "backward" not in event.key:
            counts[event.key.removeprefix(prefix)] = counts.get(event.key.removeprefix(prefix), 0) + event.count
    return counts


@contextlib.contextmanager
def cast_lora_weights_once(transformer: torch.nn.Module, dtype: torch.dtype) -> Iterator[int]:
    """Within the block, every LoRA weight is cast to ``dtype`` once, not at every call.

    Needs :func:`lora_compute_in_base_dtype` first. Wrap the step's forward *and* backward: the
    checkpoint recompute runs during the backward and reuses the same copy. The copy is part of
    the autograd graph, so the float32 master weight still gets its (float32) gradient, summed
    over every use. Costs one ``dtype`` copy of the LoRA weights (0.43 GB at rank 32 on the full
    model). Yields how many weights are cached (0 when ``dtype`` is float32: nothing to save).
    """
    layers = [m for m in transformer.modules() if isinstance(m, _WeightCastingLinear)]
    if dtype == torch.float32 or not layers:
        yield 0
        return
    for layer in layers:
        layer.__dict__["step_weight"] = layer.weight.to(dtype)
    try:
        yield len(layers)
    finally:
        for layer in layers:
            layer.__dict__.pop("step_weight", None)
