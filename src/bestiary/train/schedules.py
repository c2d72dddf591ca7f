"""Learning-rate schedules as plain functions of the step.

A schedule here is a *multiplier* of the optimizer's base learning rate, ``f(step) -> float``. Being a
pure function of the step (no hidden state) is what makes resuming exact: the Trainer only has to
remember the step. The same function works with PyTorch's own scheduler::

    from functools import partial
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(warmup_cosine, warmup=100, total=1000))

Warmup + cosine decay is the schedule of most transformer papers since "Attention Is All You Need"
(Vaswani et al., 2017, arXiv:1706.03762, which used warmup + inverse square root) and SGDR
(Loshchilov & Hutter, 2016, "SGDR: Stochastic Gradient Descent with Warm Restarts", arXiv:1608.03983,
which introduced the cosine shape).
"""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """LR multiplier: linear warmup from ~0 to 1 over ``warmup`` steps, then cosine decay to ``min_ratio``.

    - ``step < warmup``: ``(step + 1) / (warmup + 1)`` -- small but not zero at step 0, so the very first
      update is not wasted; reaches 1 exactly at ``step == warmup``.
    - ``warmup <= step <= total``: half a cosine from 1 down to ``min_ratio``.
    - ``step >= total``: stays at ``min_ratio``.

    Why warm up at all: Adam's second-moment estimate is noisy for the first few steps, and a large LR
    on top of it can blow up a freshly initialised transformer. Why cosine: it spends most of the run
    at a high LR and anneals smoothly at the end, which usually beats a step decay.
    """
    if warmup < 0 or total < 0:
        raise ValueError(f"warmup and total must be >= 0, got warmup={warmup}, total={total}")
    if total < warmup:
        raise ValueError(f"total ({total}) must be >= warmup ({warmup})")
    if not 0.0 <= min_ratio <= 1.0:
        raise ValueError(f"min_ratio must be in [0, 1], got {min_ratio}")
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if step >= total:
        return min_ratio
    progress = (step - warmup) / max(1, total - warmup)  # 0 -> 1 over the decay phase
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def constant(step: int) -> float:
    """The do-nothing schedule (multiplier 1), for symmetry with :func:`warmup_cosine`."""
    return 1.0
