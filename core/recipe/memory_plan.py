"""``optimization.memory_plan: auto``: the fastest checkpointing setting that fits the card.

:func:`plan_memory` is a pure function: given the GPU memory a run may use, the token count of
its largest bucket (video + audio tokens of one clip, :func:`bucket_tokens`), the model preset,
the quantisation, the optimizer and the LoRA rank, it returns a :class:`MemoryPlan`: gradient
checkpointing on or off, the policy, its ratio and the rest policy, with the memory it predicts
and a sentence saying why. The engine applies it (:func:`worker.engine.step.setup.planned_optimization`);
the linter can ask whether a manual setting fits a card (:func:`setting_fits`).

The memory model is fitted to docs/benchmarks.md's measured tables (LTX-2.3, 19.2 B transformer,
bf16, LoRA rank 32 on ``to_k,to_q,to_v,to_out.0``, AdamW, 1 clip, 1,024 text tokens, compiled
blocks with checkpointing inside them, whole-step CUDA graph, H100 80 GB), "reserved" figures
(what the card must have), at 1,843 tokens (512x512x49) and 9,342 tokens (768x768x121):

- the frozen weights, LoRA state and the per-token cost of full checkpointing: the two ``full``
  rows (40.7 and 46.5 GiB), linear in tokens; the int8 base from the low-VRAM row (23.2 GiB, int8
  + 8-bit AdamW, rank 32);
- each block's extra memory when it keeps everything (``none``): the no-checkpointing row at
  1,843 tokens (67.4 GiB) and the ``none`` 15% / 19% + ``attention`` rows at 9,342 (70.4, 75.5;
  the larger of the two per-block figures), affine in tokens between the two (a fixed part per
  block plus a part per token), extended along the same line outside them;
- ``attention`` (kept attention outputs) and ``matmul`` (kept matmul outputs): measured only at
  9,342 tokens (``attention`` everywhere 53.7 and 54.1 GiB, the larger taken; ``matmul`` 25% and
  30% + ``attention``, 71.0 and 74.3 GiB, the larger per-block figure taken) and scaled to other
  token counts as ``none``'s per-block cost scales (not measured at 1,843 tokens).

The fit reproduces every measured row within 0.5 GiB, never below it (tests/unit/recipe/
test_memory_plan.py). The trainer also keeps the text connectors, the video and audio VAE and
the vocoder on the device (not in the bench's step): their bf16 / float32 weights are added per
model generation (parameter counts of the published configs). LTX-2.5 has 2.3's shape (its H200
step matched 2.3 within 1%); LTX-2.0's transformer is taken to be the same (not measured).

Speed: the settings are tried fastest first (the less recompute, the faster, as every measured
row ordered): no checkpointing; ``matmul`` on k of the 48 blocks (k from 48 down) with
``attention`` on the rest; ``attention`` on k blocks with ``full`` on the rest; the defaults
(``full`` everywhere). The first whose prediction plus the margin (:data:`MARGIN_SHARE` of the
memory, at least :data:`MARGIN_MIN_GIB`) fits is the plan. Steps that the table did not measure
(blocks not compiled, e.g. an int8 base or ``compile: false``; a toy model; the CPU) keep the
defaults. Pure Python: no torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.names import CheckpointPolicy

MemoryPlanChoice = Literal["manual", "auto"]
MEMORY_PLAN_HELP = (
    "manual: the checkpointing settings below are used as written. auto: on a CUDA GPU the engine picks the "
    "fastest checkpointing setting that fits the card's free memory for the largest bucket (a memory model "
    "fitted to docs/benchmarks.md) and logs its choice; on the CPU, with an int8 base or without compile, "
    "the defaults. auto replaces gradient_checkpointing and the checkpointing_* settings."
)
GIB = 1024**3
BLOCKS = 48  # transformer blocks of every full-size preset
AUDIO_LATENTS_PER_SECOND = 25.0
FPS = 24.0  # the bench's clip rate; audio tokens are ~3% of a clip's tokens
MARGIN_SHARE = 0.06
MARGIN_MIN_GIB = 3.0

# measured reserved GiB (docs/benchmarks.md), tokens in thousands
_T_SMALL, _T_LARGE = 1.843, 9.342
_FULL_SMALL, _FULL_LARGE = 40.7, 46.5
_NONE_ALL_SMALL = 67.4
_ATTENTION_ALL_LARGE = 54.1
_ATTENTION_ALL_LARGE_EXTRA = _ATTENTION_ALL_LARGE - _FULL_LARGE
_NONE_MIXES_LARGE = ((7, 70.4), (9, 75.5))  # (blocks on none, reserved); attention on the rest
_MATMUL_MIXES_LARGE = ((12, 71.0), (14, 74.3))  # (blocks on matmul, reserved); attention on the rest
_INT8_8BIT_FULL_SMALL = 23.2
# LoRA rank 32 on the default targets: 213.9 M float32 weights, their gradients, their bf16 copy
# and the optimizer's two moments (AdamW float32; 8-bit AdamW about a quarter)
_LORA_GB_R32 = {"adamw": 0.86 + 0.86 + 0.43 + 1.71, "adamw8bit": 0.86 + 0.86 + 0.43 + 0.44}
# what else the trainer keeps on the device: connectors + video VAE (bf16), audio VAE + vocoder (fp32)
_OTHER_COMPONENTS_GIB = {"ltx-2.3": 7.94, "ltx-2.5": 7.94, "ltx-2": 5.35}


@dataclass(frozen=True)
class MemorySetting:
    """One checkpointing setting, in the run config's terms."""

    gradient_checkpointing: bool = True
    policy: CheckpointPolicy = "full"
    ratio: float = 1.0
    rest_policy: CheckpointPolicy = "full"

    def describe(self) -> str:
        if not self.gradient_checkpointing:
            return "no checkpointing"
        if self.ratio >= 1.0:
            return "the defaults (full checkpointing)" if self.policy == "full" else f"{self.policy} on every block"
        return f"{self.policy} on {round(self.ratio * BLOCKS)} of {BLOCKS} blocks, {self.rest_policy} on the rest"

    def fields(self) -> dict:
        """The run config's ``optimization`` fields of this setting."""
        return {"gradient_checkpointing": self.gradient_checkpointing, "checkpointing_policy": self.policy,
                "checkpointing_ratio": self.ratio, "checkpointing_rest_policy": self.rest_policy}


DEFAULTS = MemorySetting()


@dataclass(frozen=True)
class MemoryPlan:
    """What :func:`plan_memory` chose: the setting, its predicted need (None: not modelled) and why."""

    setting: MemorySetting
    needs_gib: float | None
    reason: str


def bucket_tokens(width: int, height: int, frames: int, *, with_audio: bool = True) -> int:
    """Video + audio tokens of one clip of a bucket, counted as ``avlora bench train`` counts them
    (512x512x49: 1,792 + 51 = 1,843; 768x768x121: 9,216 + 126 = 9,342)."""
    video = ((frames - 1) // 8 + 1) * (height // 32) * (width // 32)
    audio = round(frames / FPS * AUDIO_LATENTS_PER_SECOND) if with_audio else 0
    return video + audio


def _per_token_full() -> float:
    return (_FULL_LARGE - _FULL_SMALL) / (_T_LARGE - _T_SMALL)


def _base_gib(quantization: str, optimizer: str, rank: int) -> float:
    """Frozen weights + LoRA state + the fixed rest (fitted), at zero tokens."""
    lora_r32_adamw = _LORA_GB_R32["adamw"] * 1e9 / GIB
    bf16 = _FULL_SMALL - _per_token_full() * _T_SMALL - lora_r32_adamw
    if quantization == "int8":
        frozen = _INT8_8BIT_FULL_SMALL - _per_token_full() * _T_SMALL - _LORA_GB_R32["adamw8bit"] * 1e9 / GIB
    else:
        frozen = bf16
    return frozen + _LORA_GB_R32[optimizer] * 1e9 / GIB * rank / 32


def _none_block(tokens_k: float) -> float:
    """One block's extra GiB over ``full`` when it keeps everything, affine in tokens."""
    small = (_NONE_ALL_SMALL - _FULL_SMALL) / BLOCKS
    attention_large = _ATTENTION_ALL_LARGE_EXTRA / BLOCKS
    large = max((gib - _FULL_LARGE - (BLOCKS - k) * attention_large) / k for k, gib in _NONE_MIXES_LARGE)
    slope = (large - small) / (_T_LARGE - _T_SMALL)
    return max(0.0, small + slope * (tokens_k - _T_SMALL))



def _block_extra(policy: str, tokens_k: float) -> float:
    """One block's extra GiB over ``full`` under ``policy`` at ``tokens_k`` thousand tokens."""
    if policy == "full":
        return 0.0
    none = _none_block(tokens_k)
    if policy == "none":
        return none
    attention_large = _ATTENTION_ALL_LARGE_EXTRA / BLOCKS
    if policy == "attention":
        return none * attention_large / _none_block(_T_LARGE)
    matmul_large = max((gib - _FULL_LARGE - (BLOCKS - k) * attention_large) / k for k, gib in _MATMUL_MIXES_LARGE)
    return none * matmul_large / _none_block(_T_LARGE)


def predicted_gib(setting: MemorySetting, tokens: int, *, model: str = "ltx-2.3", quantization: str = "none",
                  optimizer: str = "adamw", rank: int = 32, trainer: bool = True) -> float:
    """GiB the card must have for ``setting`` at ``tokens`` (reserved, as the bench counts it);
    ``trainer``: with the trainer's other components on the device (the bench's step has none)."""
    tokens_k = tokens / 1000
    total = _base_gib(quantization, optimizer, rank) + _per_token_full() * tokens_k
    if not setting.gradient_checkpointing:
        total += BLOCKS * _block_extra("none", tokens_k)
    else:
        chosen = round(setting.ratio * BLOCKS)
        total += chosen * _block_extra(setting.policy, tokens_k)
        total += (BLOCKS - chosen) * _block_extra(setting.rest_policy, tokens_k)
    return total + (_OTHER_COMPONENTS_GIB.get(model, 0.0) if trainer else 0.0)


def candidates() -> list[MemorySetting]:
    """Every setting :func:`plan_memory` considers, fastest first."""
    ladder = [MemorySetting(gradient_checkpointing=False), MemorySetting(policy="matmul")]
    ladder += [MemorySetting(policy="matmul", ratio=round(k / BLOCKS, 4), rest_policy="attention")
               for k in range(BLOCKS - 1, 0, -1)]
    ladder.append(MemorySetting(policy="attention"))
    ladder += [MemorySetting(policy="attention", ratio=round(k / BLOCKS, 4)) for k in range(BLOCKS - 1, 0, -1)]
    return [*ladder, DEFAULTS]


def usable_gib(free_bytes: int) -> float:
    """What a plan may fill of ``free_bytes``: the memory less the safety margin."""
    free = free_bytes / GIB
    return free - max(MARGIN_MIN_GIB, MARGIN_SHARE * free)


def plan_memory(free_bytes: int | None, tokens: int, *, model: str = "ltx-2.3", quantization: str = "none",
                optimizer: str = "adamw", rank: int = 32, compiled: bool = True) -> MemoryPlan:
    """The fastest setting predicted to fit in ``free_bytes`` (None: no GPU) for a clip of
    ``tokens`` tokens; the defaults where the step is not the measured one or nothing fits."""
    if free_bytes is None:
        return MemoryPlan(DEFAULTS, None, "on the CPU: the defaults")
    head = f"free {free_bytes / GIB:,.0f} GiB, bucket {tokens:,} tokens"
    if model not in _OTHER_COMPONENTS_GIB:
        return MemoryPlan(DEFAULTS, None, f"{head}: the defaults (no memory model for {model})")
    if quantization != "none" or not compiled:
        why = "an int8 base" if quantization != "none" else "blocks not compiled"
        return MemoryPlan(DEFAULTS, None, f"{head}: the defaults ({why}: the measured settings are for compiled "
                                          "bf16 blocks)")
    usable = usable_gib(free_bytes)
    for setting in candidates():
        needs = predicted_gib(setting, tokens, model=model, quantization=quantization, optimizer=optimizer, rank=rank)
        if needs <= usable:
            return MemoryPlan(setting, needs, f"{head}: {setting.describe()} (needs ~{needs:.0f} GiB)")
    return MemoryPlan(DEFAULTS, needs, f"{head}: the defaults, which need ~{needs:.0f} GiB: more than the card "
                                       "has; expect out of memory (try quantization int8 or a smaller bucket)")


def setting_fits(setting: MemorySetting, free_bytes: int, tokens: int, **model) -> tuple[bool, float]:
    """Whether a manual ``setting`` is predicted to fit ``free_bytes`` (with the margin), and its need in GiB."""
    needs = predicted_gib(setting, tokens, **model)
    return needs <= usable_gib(free_bytes), needs
