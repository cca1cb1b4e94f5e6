"""Timestep (noise level) samplers for rectified-flow training.

The default is the official LTX-2 trainer's "shifted logit-normal" sampler: a logit-normal
distribution (std 1) whose mean shifts with the token count (0.95 at 1,024 tokens, 2.05 at
4,096, linear in between and held beyond), stretched so that its 0.5th..99.9th percentiles map
onto [0, 1], with a fraction of uniform draws (10%) so no noise level is ever starved.

All samplers return noise levels ``s`` in [0, 1]; the transformer receives ``s * 1000``.
"""

from __future__ import annotations

import math

import torch

# Standard-normal quantiles used for the stretch (0.5th and 99.9th percentiles).
NORMAL_Q_0005 = -2.5758293035489004
NORMAL_Q_0999 = 3.090232306167813

SHIFT_MIN_TOKENS = 1024
SHIFT_MAX_TOKENS = 4096
SHIFT_AT_MIN_TOKENS = 0.95
SHIFT_AT_MAX_TOKENS = 2.05


def logit_normal_shift(seq_length: int) -> float:
    """Mean of the logit-normal for a sequence of ``seq_length`` tokens.

    Linear through (1,024 -> 0.95) and (4,096 -> 2.05); held at 2.05 above 4,096 tokens
    (the official trainer caps it there, otherwise both stretch bounds saturate at 1).
    Below 1,024 tokens the line is extended, as the official trainer does.
    """
    tokens = min(int(seq_length), SHIFT_MAX_TOKENS)
    slope = (SHIFT_AT_MAX_TOKENS - SHIFT_AT_MIN_TOKENS) / (SHIFT_MAX_TOKENS - SHIFT_MIN_TOKENS)
    return SHIFT_AT_MIN_TOKENS + slope * (tokens - SHIFT_MIN_TOKENS)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class ShiftedLogitNormalSampler:
    """Stretched, shifted logit-normal noise-level sampler with a uniform share.

    ``eps`` keeps draws away from exactly 0: stretched values below ``eps`` are reflected
    around it (as the official sampler does) and uniform draws lie in [eps, 1).
    """

    name = "shifted_logit_normal"

    def __init__(self, std: float = 1.0, uniform_prob: float = 0.1, eps: float = 1e-3):
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}")
        if not 0.0 <= uniform_prob <= 1.0:
            raise ValueError(f"uniform_prob must be in [0, 1], got {uniform_prob}")
        self.std = std
        self.uniform_prob = uniform_prob
        self.eps = eps

    def stretch_bounds(self, seq_length: int) -> tuple[float, float]:
        """The logit-normal's 0.5th and 99.9th percentiles for this sequence length."""
        mu = logit_normal_shift(seq_length)
        return _sigmoid(mu + NORMAL_Q_0005 * self.std), _sigmoid(mu + NORMAL_Q_0999 * self.std)

    def sample(
        self,
        batch_size: int,
        seq_length: int,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw ``batch_size`` noise levels in [0, 1] (float32) for ``seq_length`` tokens."""
        mu = logit_normal_shift(seq_length)
        low, high = self.stretch_bounds(seq_length)
        normal = torch.randn(batch_size, generator=generator, device=device) * self.std + mu
        stretched = (torch.sigmoid(normal) - low) / (high - low)
        stretched = torch.where(stretched >= self.eps, stretched, 2 * self.eps - stretched)
        stretched = stretched.clamp(0.0, 1.0)
        uniform = (1 - self.eps) * torch.rand(batch_size, generator=generator, device=device) + self.eps
        use_uniform = torch.rand(batch_size, generator=generator, device=device) < self.uniform_prob
        return torch.where(use_uniform, uniform, stretched)


class UniformSampler:
    """Noise levels uniform in [0, 1)."""

    name = "uniform"

    def sample(
        self,
        batch_size: int,
        seq_length: int,  # noqa: ARG002 - same signature as the shifted sampler
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """Draw ``batch_size`` noise levels uniformly."""
        return torch.rand(batch_size, generator=generator, device=device)


def make_sampler(name: str = "shifted_logit_normal") -> ShiftedLogitNormalSampler | UniformSampler:
    """Build a sampler by its config name (``shifted_logit_normal`` or ``uniform``)."""
    if name == ShiftedLogitNormalSampler.name:
        return ShiftedLogitNormalSampler()
    if name == UniformSampler.name:
        return UniformSampler()
    raise ValueError(f"Unknown timestep sampler {name!r}: use 'shifted_logit_normal' or 'uniform'.")


def sampler_for(settings) -> ShiftedLogitNormalSampler | UniformSampler:
    """The sampler of a run config's ``training.timesteps`` (a ``TimestepSettings``)."""
    if settings.mode == "uniform":
        return UniformSampler()
    return ShiftedLogitNormalSampler(std=settings.std, uniform_prob=settings.uniform_prob, eps=settings.eps)
