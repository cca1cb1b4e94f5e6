import pytest
import torch

from worker.engine.step.optim import linear_schedule


def _lrs(steps: int, **kwargs) -> list[float]:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1e-4)
    scheduler = linear_schedule(optimizer, total_steps=steps, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def test_linear_decay_ends_at_the_official_tenth_of_the_peak():
    lrs = _lrs(100, end_factor=0.1)
    assert lrs[0] == pytest.approx(1e-4)
    assert lrs[50] == pytest.approx(1e-4 * (1 - 0.9 * 0.5))
    assert lrs[-1] == pytest.approx(1e-5)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_warmup_rises_linearly_before_the_decay():
    lrs = _lrs(20, warmup_steps=4, end_factor=0.0)
    assert lrs[:4] == pytest.approx([2.5e-5, 5e-5, 7.5e-5, 1e-4])
    assert lrs[-1] == pytest.approx(0.0)


def test_constant_schedule_keeps_the_peak_after_warmup():
    lrs = _lrs(10, end_factor=1.0)
    assert lrs == pytest.approx([1e-4] * 11)
