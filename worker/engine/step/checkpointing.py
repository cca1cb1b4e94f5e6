"""Activation checkpointing of the transformer blocks, with a choice of what is recomputed.

Gradient checkpointing of the transformer blocks with a
choice of what is recomputed. ``policy="full"`` (the default, diffusers' own behaviour)
recomputes each block's whole forward; ``"attention"`` keeps the SDPA outputs (the costliest
op to recompute at long sequences, and small to keep); ``"matmul"`` keeps every matmul and
attention output and recomputes only norms and pointwise ops; ``"none"`` keeps everything.
``ratio`` < 1 gives the policy to that share of the blocks (evenly spread) and recomputes the
others in full, so a policy that would not fit on every block fits on some. With compiled
blocks the checkpoint sits inside the compiled graph. Same numbers, less recompute, more memory.
"""

from __future__ import annotations

import types
from functools import partial

import torch

from core.names import CHECKPOINT_POLICIES


def has_active_dropout(module: torch.nn.Module) -> bool:
    """Whether any dropout layer in ``module`` drops anything (p > 0): the only randomness inside
    the LTX-2 blocks (their attention dropout is 0; a LoRA may add dropout on its input)."""
    return any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in module.modules())


def checkpointed_block_indices(blocks: int, ratio: float) -> list[int]:
    """Which of ``blocks`` blocks take the policy for ``ratio`` (round(blocks x ratio) of them,
    evenly spread; ratio 1 = all, 0.5 = every other block)."""
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"checkpoint ratio must be between 0 and 1, got {ratio}")
    count = round(blocks * ratio)
    return [i for i in range(blocks) if (i + 1) * count // blocks > i * count // blocks]


def block_checkpoint_modes(blocks: int, policy: str, ratio: float, rest: str = "full") -> list[str]:
    """Each block's checkpointing: ``policy`` for a share ``ratio`` of the blocks (evenly
    spread), ``rest`` (default ``"full"``) for the others."""
    for name in (policy, rest):
        if name not in CHECKPOINT_POLICIES:
            raise ValueError(f"checkpoint policy must be one of {', '.join(CHECKPOINT_POLICIES)}, got {name!r}")
    chosen = set(checkpointed_block_indices(blocks, ratio))
    return [policy if i in chosen else rest for i in range(blocks)]


def _saved_ops(policy: str) -> frozenset:
    aten = torch.ops.aten
    attention = {
        getattr(aten, name).default
        for name in ("_scaled_dot_product_flash_attention", "_scaled_dot_product_efficient_attention",
                     "_scaled_dot_product_cudnn_attention", "_scaled_dot_product_flash_attention_for_cpu")
        if hasattr(aten, name)
    }
    if policy == "attention":
        return frozenset(attention)
    return frozenset(attention | {aten.mm.default, aten.addmm.default, aten.bmm.default})


def _save_listed_ops(saved: frozenset, ctx, op, *args, **kwargs):  # noqa: ARG001 - torch's policy signature
    from torch.utils.checkpoint import CheckpointPolicy

    return CheckpointPolicy.MUST_SAVE if op in saved else CheckpointPolicy.PREFER_RECOMPUTE


def selective_context_fn(policy: str):
    """The ``context_fn`` for ``torch.utils.checkpoint.checkpoint`` that keeps ``policy``'s ops'
    outputs (None for ``"full"``: recompute everything)."""
    if policy not in CHECKPOINT_POLICIES or policy == "none":
        raise ValueError(f"no checkpoint context for policy {policy!r}")
    if policy == "full":
        return None
    from torch.utils.checkpoint import create_selective_checkpoint_contexts

    return partial(create_selective_checkpoint_contexts, partial(_save_listed_ops, _saved_ops(policy)))


def _checkpoint_options(mode: str, preserve_rng_state: bool) -> dict:
    # Without dropout the blocks draw no random numbers, so the recompute needs no saved RNG
    # state: saving it costs host time per block, and reading the CUDA generator's state is not
    # allowed while a CUDA graph is being captured (worker.engine.step.graphed).
    options = {"use_reentrant": False, "preserve_rng_state": preserve_rng_state}
    context_fn = selective_context_fn(mode)
    if context_fn is not None:
        options["context_fn"] = context_fn
    return options


def _checkpointed_forward(block_forward, options: dict):
    """A block ``forward`` that runs the class's own forward under a checkpoint (one function per
    mode, shared by the blocks, so their compiled graphs are shared too)."""
    from torch.utils.checkpoint import checkpoint

    def forward(self, *args, **kwargs):
        if not torch.is_grad_enabled():  # sampling: nothing to save, nothing to recompute
            return block_forward(self, *args, **kwargs)
        return checkpoint(block_forward, self, *args, **options, **kwargs)

    return forward


def enable_activation_checkpointing(transformer: torch.nn.Module, *, policy: str = "full",
                                    ratio: float = 1.0, rest: str = "full",
                                    inside_compile: bool = False) -> list[str]:
    """Turn on gradient checkpointing of the transformer blocks; returns each block's mode.

    ``policy`` (:data:`CHECKPOINT_POLICIES`) applies to a share ``ratio`` of the blocks (evenly
    spread); the others use ``rest`` (default: recompute in full). ``full`` recomputes the block's whole forward
    (diffusers' own behaviour); ``attention`` keeps the SDPA outputs; ``matmul`` keeps every
    matmul and SDPA output and recomputes only norms and pointwise ops; ``none`` keeps
    everything (no checkpoint). ``policy="full"`` is exactly diffusers' default.

    ``inside_compile``: the blocks will be compiled (:mod:`worker.engine.step.compiling`). The
    checkpoint then goes *inside* each block's forward, so the compiled graph holds it: the
    partitioner keeps what the policy saves and fuses the recompute into the backward. (A
    checkpoint around a compiled call cannot see inside it: there a selective policy ran more
    ops, not fewer.) Otherwise diffusers' own switch is used (``enable_gradient_checkpointing
    (func)``: the model calls ``func(block, *args)`` for each block while gradients are on).
    """
    blocks = list(transformer.transformer_blocks)
    modes = block_checkpoint_modes(len(blocks), policy, ratio, rest)
    rng = has_active_dropout(transformer)
    if inside_compile:
        forwards = {}
        for block, mode in zip(blocks, modes):
            if mode == "none":
                continue
            if mode not in forwards:
                forwards[mode] = _checkpointed_forward(type(block).forward, _checkpoint_options(mode, rng))
            block.forward = types.MethodType(forwards[mode], block)
        return modes

    from torch.utils.checkpoint import checkpoint

    options_of = {id(block): _checkpoint_options(mode, rng) for block, mode in zip(blocks, modes) if mode != "none"}

    def checkpointing_func(module, *args):
        options = options_of.get(id(module))
        if options is None:
            return module(*args)
        return checkpoint(module.__call__, *args, **options)

    transformer.enable_gradient_checkpointing(checkpointing_func)
    return modes
