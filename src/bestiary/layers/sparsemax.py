"""Sparsemax: a softmax that can output exact zeros.

"From Softmax to Sparsemax: A Sparse Model of Attention and Multi-Label Classification"
(Martins & Astudillo, 2016, arXiv:1602.02068).

sparsemax(z) is the Euclidean projection of z onto the probability simplex:
argmin_p ||p - z||² subject to p >= 0, sum(p) = 1. The solution is p_i = max(z_i - tau, 0) with the
threshold tau chosen so that the p's sum to one; entries below tau get exactly zero. TabNet uses it
to pick a few input features per decision step.
"""

from __future__ import annotations

import torch
from torch import nn


def sparsemax_threshold(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The threshold tau(z) along `dim` (kept as a size-1 dim), by the sort-based closed form.

    Sort z descending: z_(1) >= z_(2) >= ... The support size is the largest k with
    1 + k z_(k) > z_(1) + ... + z_(k); then tau = (z_(1) + ... + z_(k) - 1) / k.
    """
    z_sorted, _ = torch.sort(z, dim=dim, descending=True)
    cumsum = z_sorted.cumsum(dim)
    shape = [1] * z.dim()
    shape[dim] = z.shape[dim]
    k = torch.arange(1, z.shape[dim] + 1, dtype=z.dtype, device=z.device).view(shape)  # 1..K along dim
    in_support = 1 + k * z_sorted > cumsum  # true for a prefix of the sorted entries
    support_size = in_support.sum(dim=dim, keepdim=True)  # (..., 1, ...) >= 1 always
    return (cumsum.gather(dim, support_size - 1) - 1) / support_size.to(z.dtype)


class _Sparsemax(torch.autograd.Function):
    """Sparsemax with its closed-form backward (the Jacobian is cheap and needs no sort)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, dim: int) -> torch.Tensor:
        z = z - z.amax(dim=dim, keepdim=True)  # sparsemax is shift-invariant; this avoids overflow
        p = (z - sparsemax_threshold(z, dim)).clamp(min=0)
        ctx.save_for_backward(p)
        ctx.dim = dim
        return p

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (p,) = ctx.saved_tensors
        # Jacobian = diag(s) - s sᵀ / |S|, s the support indicator: inside the support the gradient
        # is centred (outputs must keep summing to one), outside it is zero.
        support = (p > 0).to(grad.dtype)
        mean_in_support = (grad * support).sum(ctx.dim, keepdim=True) / support.sum(ctx.dim, keepdim=True)
        return support * (grad - mean_in_support), None


def sparsemax(z: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Project `z` onto the probability simplex along `dim` (see the module docstring)."""
    return _Sparsemax.apply(z, dim)


class Sparsemax(nn.Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return sparsemax(z, self.dim)
