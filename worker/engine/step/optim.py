"""Optimizer and learning-rate schedule for LoRA training."""

from __future__ import annotations

import torch


class OptimizerUnavailable(RuntimeError):
    """The configured optimizer cannot run on this machine; the message says what is missing."""


def build_optimizer(
    params: list[torch.nn.Parameter],
    *,
    name: str,
    lr: float,
    weight_decay: float = 0.01,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    fused: bool = True,
) -> torch.optim.Optimizer:
    """``adamw`` (torch) or ``adamw8bit`` (bitsandbytes; needs a CUDA GPU).

    ``fused``: torch's fused AdamW (one kernel over all tensors, on CUDA and CPU) for float
    parameters; off, torch's default implementation (the straightforward step's optimizer).

    8-bit AdamW is refused with :class:`OptimizerUnavailable` when bitsandbytes is missing or
    no CUDA GPU is present, rather than silently falling back to another optimizer.
    """
    if not params:
        raise ValueError("No trainable parameters: the LoRA matched nothing.")
    if name == "adamw":
        use_fused = fused and all(p.is_floating_point() and p.device.type in ("cuda", "cpu") for p in params)
        return torch.optim.AdamW(
            params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps, fused=True if use_fused else None
        )
    if name in ("adamw8bit", "adamw_8bit"):
        if not torch.cuda.is_available():
            raise OptimizerUnavailable(
                "optimizer 'adamw8bit' needs a CUDA GPU (bitsandbytes' 8-bit AdamW has no CPU kernel). "
                "Use optimizer: adamw on this machine."
            )
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise OptimizerUnavailable(
                "optimizer 'adamw8bit' needs the bitsandbytes package (pip install bitsandbytes), "
                "or set optimizer: adamw."
            ) from exc
        return bnb.optim.AdamW8bit(params, lr=lr, weight_decay=weight_decay, betas=betas, eps=eps)
    raise ValueError(f"Unknown optimizer {name!r}: use 'adamw' or 'adamw8bit'.")


def linear_schedule(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int = 0,
                    end_factor: float = 0.0):
    """Linear warm-up over ``warmup_steps``, then linear decay to ``end_factor`` x the peak at
    ``total_steps`` (the official trainer's linear schedule ends at 0.1)."""
    if total_steps < 1:
        raise ValueError(f"total_steps must be at least 1, got {total_steps}")

    def factor(step: int) -> float:
        if warmup_steps and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        done = min(1.0, max(0.0, (step - warmup_steps) / span))
        return 1.0 - (1.0 - end_factor) * done

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
