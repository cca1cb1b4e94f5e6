"""The official shifted logit-normal timestep sampler: its quantiles, shift and uniform share."""

import math
from statistics import NormalDist

import pytest
import torch

from worker.engine.step.timesteps import ShiftedLogitNormalSampler, logit_normal_shift, make_sampler


def _expected_quantile(p: float, seq_length: int) -> float:
    """Quantile of the stretched logit-normal computed in closed form (no uniform share)."""
    mu = logit_normal_shift(seq_length)
    low = 1 / (1 + math.exp(-(mu + NormalDist().inv_cdf(0.005))))
    high = 1 / (1 + math.exp(-(mu + NormalDist().inv_cdf(0.999))))
    value = 1 / (1 + math.exp(-(mu + NormalDist().inv_cdf(p))))
    return (value - low) / (high - low)


def test_shift_is_linear_in_sequence_length_and_capped():
    assert logit_normal_shift(1024) == pytest.approx(0.95)
    assert logit_normal_shift(4096) == pytest.approx(2.05)
    assert logit_normal_shift(2560) == pytest.approx(1.5)
    assert logit_normal_shift(100_000) == pytest.approx(2.05)


@pytest.mark.parametrize("seq_length", [1024, 1843, 4096])
def test_quantiles_match_the_stretched_logit_normal(seq_length):
    sampler = ShiftedLogitNormalSampler(uniform_prob=0.0)
    draws = sampler.sample(200_000, seq_length, generator=torch.Generator().manual_seed(0))
    for p in (0.1, 0.25, 0.5, 0.75, 0.9):
        measured = torch.quantile(draws, p).item()
        assert measured == pytest.approx(_expected_quantile(p, seq_length), abs=0.01), p
    # the stretch maps the 99.9th percentile to 1: about 0.1% of draws are clamped to 1
    assert (draws == 1.0).float().mean().item() == pytest.approx(0.001, abs=0.0005)
    assert draws.min().item() >= 0.0


def test_longer_sequences_draw_noisier_timesteps():
    sampler = ShiftedLogitNormalSampler()
    gen = torch.Generator().manual_seed(1)
    short = sampler.sample(50_000, 1024, generator=gen).median().item()
    long = sampler.sample(50_000, 4096, generator=gen).median().item()
    assert long > short + 0.1


def test_ten_percent_of_draws_are_uniform():
    sampler = ShiftedLogitNormalSampler()  # default 10% uniform
    draws = sampler.sample(200_000, 4096, generator=torch.Generator().manual_seed(2))
    # Without the uniform share, the stretched distribution at 4,096 tokens puts ~2.3% of its
    # mass below 0.2; the uniform share adds 10% * 0.2 = 2% on top.
    pure = ShiftedLogitNormalSampler(uniform_prob=0.0).sample(
        200_000, 4096, generator=torch.Generator().manual_seed(3)
    )
    below_mixed = (draws < 0.2).float().mean().item()
    below_pure = (pure < 0.2).float().mean().item()
    assert below_mixed == pytest.approx(0.9 * below_pure + 0.1 * 0.2, abs=0.004)


def test_unknown_sampler_name_is_refused():
    with pytest.raises(ValueError, match="Unknown timestep sampler"):
        make_sampler("cosine")
