"""FLOPs of the benchmarked training step, and the reference matmul rate they are divided by.

FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode`` on one real step. Model FLOPs
leave out the forward recomputed by gradient checkpointing (hardware FLOPs keep it), so MFU is
comparable between runs with and without checkpointing; with a selective policy only the ops it
does not keep are recomputed (and counted). The step counted is the training mode's
(:mod:`worker.engine.bench.mode_step`): its LoRA layers, its inputs, and for ``reference_voice``
the reference's audio tokens, which the transformer computes on though they are never scored.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch

from core.recipe.modes import MODE_AUDIO_VIDEO
from worker.engine.bench.mode_step import ModeStep, mode_lora_targets
from worker.engine.bench.synthetic import build_on_device, synthetic_batch
from worker.engine.lora.adapters import add_lora
from worker.engine.step.checkpointing import enable_activation_checkpointing
from worker.engine.step.flow import compute_step_losses
from worker.engine.step.measure import timed_calls
from worker.engine.step.timesteps import ShiftedLogitNormalSampler


def measure_matmul_rate(device: str, dtype: torch.dtype, n: int | None = None, repeats: int | None = None) -> float:
    """Dense ``n x n @ n x n`` matmul rate in FLOP/s on ``device`` in ``dtype`` (median of repeats)."""
    n = n or (8192 if device.startswith("cuda") else 512)
    repeats = repeats or (100 if device.startswith("cuda") else 10)  # on an H100 100 take about 0.15 s
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2.0 * n**3 / statistics.median(timed_calls(lambda: a @ b, device, repeats, warmup=3))


def count_flops(fn) -> float:
    """FLOPs that ``fn()`` runs, by ``FlopCounterMode``."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return float(counter.get_total_flops())


def _step_flops(transformer, step: ModeStep, gradient_checkpointing: bool,
                checkpointing_policy: str = "full") -> tuple[float, float]:
    """(forward + backward FLOPs, forward-only FLOPs) of one training step of ``step``'s mode, counted."""
    sampler, generator = ShiftedLogitNormalSampler(), torch.Generator().manual_seed(0)

    def train_step() -> None:
        batch, inputs = step.inputs(transformer, sampler, generator)
        compute_step_losses(transformer, batch, inputs).total.backward()

    def forward_only() -> None:
        with torch.no_grad():
            batch, inputs = step.inputs(transformer, sampler, generator)
            compute_step_losses(transformer, batch, inputs)

    if gradient_checkpointing:
        enable_activation_checkpointing(transformer, policy=checkpointing_policy)
    return count_flops(train_step), count_flops(forward_only)


_FLOP_CACHE: dict[str, tuple[float, float]] = {}


@dataclass(frozen=True)
class FlopShape:
    """What the FLOPs of one step depend on: the model (its config and depth), the clip, the LoRA,
    the training mode (``target_modules`` None: the mode's default targets; narrowed by the mode)
    and the reference's audio latents (``reference_voice``)."""

    config: dict
    layers: int
    size: tuple[int, int, int]
    text_tokens: int
    device: str
    dtype: torch.dtype
    rank: int
    target_modules: tuple[str, ...] | None
    mode: str = MODE_AUDIO_VIDEO
    reference_frames: int = 0


def count_step_flops(shape: FlopShape, *, gradient_checkpointing: bool,
                     checkpointing_policy: str = "full") -> tuple[float, float]:
    """FLOPs of one step of the ``shape.layers``-block model: (step, forward), by FlopCounterMode.

    With ``checkpointing_policy`` other than full, the step's count leaves out the recompute of the
    ops whose outputs the policy keeps (the saved ops are not run again, so not counted).

    Counted on 1- and 2-block copies of the same config (blocks are identical, so the count is
    affine in the depth) and extrapolated: FlopCounterMode keeps references that defeat gradient
    checkpointing, so counting the full 48-block model would need the memory of a run without it.
    """
    from diffusers import LTX2VideoTransformer3DModel

    key = repr((sorted(shape.config.items()), shape.layers, shape.size, shape.text_tokens, shape.device, shape.dtype,
                shape.rank, shape.target_modules, shape.mode, shape.reference_frames, gradient_checkpointing,
                checkpointing_policy))
    if key in _FLOP_CACHE:  # the same shapes count the same FLOPs: count once per process
        return _FLOP_CACHE[key]
    counts = []
    for depth in (1, 2):
        model = build_on_device(LTX2VideoTransformer3DModel, {**shape.config, "num_layers": depth}, shape.device,
                                shape.dtype)
        targets, _ = mode_lora_targets(model, shape.mode, shape.target_modules)
        add_lora(model, rank=shape.rank, alpha=shape.rank, target_modules=targets)
        model.train()
        clip = synthetic_batch(model, shape.size, shape.text_tokens, shape.device, shape.dtype)
        step = ModeStep.build(clip, shape.mode, shape.reference_frames)
        counts.append(_step_flops(model, step, gradient_checkpointing, checkpointing_policy))
        del model
    (step1, fwd1), (step2, fwd2) = counts
    layers = shape.layers
    _FLOP_CACHE[key] = step1 + (step2 - step1) * (layers - 1), fwd1 + (fwd2 - fwd1) * (layers - 1)
    return _FLOP_CACHE[key]


def step_flops(shape: FlopShape, gradient_checkpointing: bool, modes: list[str]) -> tuple[float, float, float]:
    """(hardware, model, forward) FLOPs of one step whose blocks checkpoint by ``modes``.

    Hardware FLOPs hold what gradient checkpointing recomputes, model FLOPs do not.
    """
    hardware_flops, forward_flops = count_step_flops(shape, gradient_checkpointing=gradient_checkpointing)
    model_flops = hardware_flops - forward_flops if gradient_checkpointing else hardware_flops
    if gradient_checkpointing and set(modes) != {"full"}:
        # each block recomputes what its mode does not keep (the blocks are the same, so a block's
        # share is 1/layers of the whole model's recompute under that mode)
        recompute = {"full": hardware_flops - model_flops, "none": 0.0}
        for mode in set(modes) - set(recompute):
            recompute[mode] = count_step_flops(shape, gradient_checkpointing=True,
                                               checkpointing_policy=mode)[0] - model_flops
        hardware_flops = model_flops + sum(recompute[mode] for mode in modes) / shape.layers
    return hardware_flops, model_flops, forward_flops
