"""Normalisation layers. LayerNorm is torch.nn.LayerNorm; RMSNorm is written out because it is short
and worth reading ("Root Mean Square Layer Normalization", Zhang & Sennrich, 2019, arXiv:1910.07467)."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) * weight — LayerNorm without the mean subtraction and the bias."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # compute in float32 at least: the mean of squares underflows in bf16
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # float32 at least; float64 stays
        normed = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


def make_norm(kind: str, dim: int, eps: float = 1e-5, bias: bool = True) -> nn.Module:
    """'layernorm' | 'rmsnorm' | 'none' -> a module over the last dimension.

    `bias=False` drops LayerNorm's additive shift (nanoGPT's `bias=False`); RMSNorm never has one.
    """
    if kind == "layernorm":
        return nn.LayerNorm(dim, eps=eps, bias=bias)
    if kind == "rmsnorm":
        return RMSNorm(dim, eps=eps)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose 'layernorm', 'rmsnorm' or 'none'")
