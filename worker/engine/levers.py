"""Speed levers of the LoRA training step that leave its results unchanged (within rounding).

Each lever is on by default in the engine (``avlora train``, ``avlora bench train``) and can be
switched off (``bench train --baseline`` switches all off: the straightforward diffusers + peft
step). ``tests/unit/engine/test_levers.py`` checks each one leaves the losses and the LoRA
gradients equal within tolerance.

- ``lora_compute_in_base_dtype``: PEFT casts every LoRA layer's *input activation* to the LoRA
  weights' float32 (and the result back), i.e. two full-size activation copies per adapted layer
  and float32 activations saved for the backward. Instead the small LoRA weights are cast to the
  activation dtype (bf16) inside the forward; the float32 master weights, their gradients and the
  optimizer state stay float32, as in ordinary mixed-precision training.
- ``drop_all_ones_text_mask``: the connector output has no padding (its mask is all ones), but a
  mask, even of ones, can keep SDPA off its flash kernel for the text cross-attention. An all-ones
  mask is passed as ``None`` (the same attention). On an H100 with torch 2.11, cuDNN attention
  ran either way (docs/benchmarks.md).
- fused AdamW (:func:`worker.engine.optim.build_optimizer`, ``fused=True`` on CUDA): one kernel
  for all LoRA tensors instead of a handful per tensor.
- regional ``torch.compile`` (:mod:`worker.engine.compiling`), on CUDA only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class StepLevers:
    """Which levers a training step uses (defaults: the engine's)."""

    lora_in_base_dtype: bool = True
    drop_all_ones_text_mask: bool = True
    fused_optimizer: bool = True
    compile_blocks: bool = False  # decided per device by the caller (GPU only)

    @classmethod
    def baseline(cls) -> "StepLevers":
        """No lever: the step as a straightforward diffusers + peft trainer writes it."""
        return cls(lora_in_base_dtype=False, drop_all_ones_text_mask=False, fused_optimizer=False,
                   compile_blocks=False)


class _WeightCastingLinear(torch.nn.Linear):
    """A LoRA ``lora_A`` / ``lora_B`` Linear that casts its (small) weight to the input's dtype.

    The cast is part of the autograd graph, so the float32 master weight still gets a float32
    gradient. State-dict keys and parameters are those of ``torch.nn.Linear``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


def lora_compute_in_base_dtype(transformer: torch.nn.Module) -> int:
    """Run every PEFT LoRA layer's math in the activations' dtype; returns the layers changed.

    Turns PEFT's input cast off (``cast_input_dtype_enabled = False``) and makes each
    ``lora_A`` / ``lora_B`` cast its weight instead. A no-op in numbers when the base model is
    float32 (the CPU default).
    """
    from worker.engine.adapters import lora_layers

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
