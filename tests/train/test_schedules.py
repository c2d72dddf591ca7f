"""warmup_cosine: shape of the curve, and that it plugs into torch's LambdaLR unchanged."""

import math
from functools import partial

import pytest
import torch

from bestiary.train import warmup_cosine


def test_warmup_starts_near_zero_peaks_at_warmup_and_ends_at_min_ratio():
    warmup, total, min_ratio = 10, 110, 0.1
    values = [warmup_cosine(s, warmup, total, min_ratio) for s in range(total + 20)]
    assert values[0] == pytest.approx(1 / 11)  # small but nonzero first step
    assert values[warmup] == pytest.approx(1.0)
    assert max(values) == pytest.approx(1.0)
    assert values.index(max(values)) == warmup
    assert values[total] == pytest.approx(min_ratio)
    assert all(v == pytest.approx(min_ratio) for v in values[total:])
    # strictly increasing during warmup, non-increasing afterwards
    assert all(a < b for a, b in zip(values[: warmup + 1], values[1 : warmup + 1]))
    assert all(a >= b for a, b in zip(values[warmup:], values[warmup + 1 :]))
    # halfway through the decay the cosine is exactly at the midpoint between 1 and min_ratio
    assert values[warmup + (total - warmup) // 2] == pytest.approx((1 + min_ratio) / 2)
    # compare with the closed form on a few points (cos written independently here)
    for s in (20, 47, 93):
        t = (s - warmup) / (total - warmup)
        assert values[s] == pytest.approx(min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * t)) / 2)


def test_no_warmup_starts_at_one():
    assert warmup_cosine(0, 0, 100) == pytest.approx(1.0)
    assert warmup_cosine(100, 0, 100) == pytest.approx(0.0)


def test_works_with_lambda_lr():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(warmup_cosine, warmup=3, total=10, min_ratio=0.2))
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5 * warmup_cosine(s, 3, 10, 0.2) for s in range(12)])


@pytest.mark.parametrize(
    "args",
    [
        dict(step=-1, warmup=1, total=2),
        dict(step=0, warmup=5, total=2),
        dict(step=0, warmup=1, total=2, min_ratio=1.5),
    ],
)
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError):
        warmup_cosine(**args)
