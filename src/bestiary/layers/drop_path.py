"""Stochastic depth ("drop path"): during training, skip a whole residual branch per sample.

"Deep Networks with Stochastic Depth" (Huang et al., 2016, arXiv:1603.09382). Used by ConvNeXt,
Swin, DeiT, EfficientNet, PoolFormer, ... as a regulariser for deep residual stacks.
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Zero the branch `x` for a random fraction `p` of the samples, rescale the rest by 1/(1-p).

    The rescaling keeps the expected value unchanged, so nothing changes at evaluation time.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)  # one coin per sample, broadcast over the rest
    mask = x.new_empty(shape).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop path probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def drop_path_rates(max_rate: float, n_blocks: int) -> list[float]:
    """The linear schedule of the stochastic-depth paper: 0 for the first block, `max_rate` for the last."""
    if n_blocks <= 1:
        return [0.0] * n_blocks
    return [max_rate * i / (n_blocks - 1) for i in range(n_blocks)]


def drop_path_rates_per_stage(max_rate: float, layers: tuple[int, ...] | list[int]) -> list[list[float]]:
    """The same linear schedule run across *all* blocks of a multi-stage network (ConvNeXt, Swin,
    ...), cut into one list per stage: `layers` gives the number of blocks of each stage."""
    rates = drop_path_rates(max_rate, sum(layers))
    starts = [sum(layers[:i]) for i in range(len(layers))]
    return [rates[start : start + depth] for start, depth in zip(starts, layers)]


def make_dropout(p: float) -> nn.Module:
    """`nn.Dropout(p)`, or `nn.Identity()` when p == 0: a no-op dropout still costs a call on every
    forward of every block, which adds up for small models trained on a CPU."""
    return nn.Dropout(p) if p > 0 else nn.Identity()
