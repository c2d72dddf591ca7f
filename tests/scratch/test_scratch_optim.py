"""Scratch optimizers follow torch.optim's trajectories step by step; schedules match torch/transformers."""

import numpy as np
import pytest
import torch

from bestiary.scratch.optim import SGD, Adam, AdamW, Param, RMSprop, cosine_lr, step_lr, warmup_cosine_lr
from bestiary.scratch.tensor import Tensor

STEPS = 40


def _grad_fn(p, t, noise):
    """A gradient that depends on the current parameters (so errors compound) plus step noise."""
    return 0.5 * p + np.sin(3 * p) + noise[t]


def _run_pair(ours_cls, torch_cls, kwargs, use_tensor=False):
    rng = np.random.default_rng(0)
    shapes = [(3, 4), (5,)]
    inits = [rng.standard_normal(s) for s in shapes]
    noises = [rng.standard_normal((STEPS, *s)) for s in shapes]
    ours = [Tensor(a.copy(), requires_grad=True) if use_tensor else Param(a) for a in inits]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in inits]
    opt, t_opt = ours_cls(ours, **kwargs), torch_cls(theirs, **kwargs)
    for t in range(STEPS):
        opt.zero_grad()
        t_opt.zero_grad()
        for p, tp, noise in zip(ours, theirs, noises):
            p.grad = _grad_fn(p.data, t, noise)
            tp.grad = torch.tensor(_grad_fn(tp.detach().numpy(), t, noise))
        opt.step()
        t_opt.step()
        for p, tp in zip(ours, theirs):
            np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=0, atol=1e-10, err_msg=f"step {t}")
    # The trajectory must actually have moved (otherwise the test proves nothing).
    assert not np.allclose(ours[0].data, inits[0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.1},
        {"lr": 0.05, "momentum": 0.9},
        {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
        {"lr": 0.05, "momentum": 0.9, "nesterov": True},
        {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1},
        {"lr": 0.05, "weight_decay": 0.01},
    ],
)
def test_sgd_matches_torch(kwargs):
    _run_pair(SGD, torch.optim.SGD, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.01},
        {"lr": 0.01, "alpha": 0.9, "momentum": 0.5},
        {"lr": 0.01, "centered": True, "weight_decay": 0.05},
        {"lr": 0.01, "centered": True, "momentum": 0.9, "eps": 1e-3},
    ],
)
def test_rmsprop_matches_torch(kwargs):
    _run_pair(RMSprop, torch.optim.RMSprop, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.01},
        {"lr": 0.05, "betas": (0.8, 0.99), "eps": 1e-3},  # large eps: its placement matters
        {"lr": 0.01, "weight_decay": 0.1},
        {"lr": 0.01, "amsgrad": True},
    ],
)
def test_adam_matches_torch(kwargs):
    _run_pair(Adam, torch.optim.Adam, kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"lr": 0.01},
        {"lr": 0.05, "weight_decay": 0.3, "eps": 1e-3},
        {"lr": 0.01, "weight_decay": 0.1, "amsgrad": True},
    ],
)
def test_adamw_matches_torch(kwargs):
    _run_pair(AdamW, torch.optim.AdamW, kwargs)


def test_optimizers_work_on_tensor_parameters():
    _run_pair(Adam, torch.optim.Adam, {"lr": 0.01}, use_tensor=True)
    _run_pair(SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}, use_tensor=True)


def test_adam_and_adamw_differ_with_weight_decay():
    a, b = Param(np.ones(3)), Param(np.ones(3))
    oa, ob = Adam([a], lr=0.1, weight_decay=0.5), AdamW([b], lr=0.1, weight_decay=0.5)
    for _ in range(3):
        a.grad, b.grad = np.full(3, 0.1), np.full(3, 0.1)
        oa.step()
        ob.step()
    assert not np.allclose(a.data, b.data)


def test_none_grads_are_skipped_and_bad_input():
    p, q = Param(np.ones(2)), Param(np.ones(2))
    opt = SGD([p, q], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(p.data, 0.9)
    np.testing.assert_allclose(q.data, 1.0)
    p.grad = np.ones(3)
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        opt.step()
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match=".data and .grad"):
        SGD([np.ones(2)], lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        SGD([p], lr=0.1, nesterov=True)


def _torch_lrs(make_scheduler, steps, base_lr=0.5):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_step_and_cosine_schedules_match_torch():
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=7, gamma=0.5), 30)
    np.testing.assert_allclose([step_lr(s, 0.5, 7, 0.5) for s in range(30)], expected, rtol=1e-12)
    expected = _torch_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=25, eta_min=0.01), 26)
    np.testing.assert_allclose([cosine_lr(s, 0.5, 25, 0.01) for s in range(26)], expected, rtol=1e-10)


@pytest.mark.parametrize("min_lr", [0.0, 0.05])
def test_warmup_cosine_matches_transformers(min_lr):
    from transformers.optimization import get_cosine_with_min_lr_schedule_with_warmup

    expected = _torch_lrs(
        lambda o: get_cosine_with_min_lr_schedule_with_warmup(o, 5, 40, min_lr=min_lr), 41, base_lr=0.5
    )
    np.testing.assert_allclose(
        [warmup_cosine_lr(s, 0.5, 5, 40, min_lr) for s in range(41)], expected, rtol=1e-12, atol=1e-15
    )
    assert warmup_cosine_lr(1000, 0.5, 5, 40, min_lr) == pytest.approx(min_lr)  # flat after the end
