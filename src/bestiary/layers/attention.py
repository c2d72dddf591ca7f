"""Scaled dot-product attention and multi-head attention (MHA, and MQA/GQA via n_kv_heads).

"Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762); grouped-query attention from
"GQA: Training Generalized Multi-Query Transformer Models" (Ainslie et al., 2023, arXiv:2305.13245).

Two paths compute the same thing: `F.scaled_dot_product_attention` (fast, fused) and a readable
manual one (`manual=True`), which is what a learner should read first. Tests check they agree.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    manual: bool = False,
) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v over the last two dims.

    q (B, H, Tq, D), k and v (B, H, Tk, D). `mask` is boolean (True = may attend), broadcastable to
    (B, H, Tq, Tk). `is_causal` lets query i see keys <= i (aligned to the end when Tk > Tq, as in
    generation with a cache).
    """
    if not manual:
        if is_causal and q.shape[-2] != k.shape[-2]:  # SDPA aligns causal masks to the start
            mask = _combine(mask, causal_mask(q.shape[-2], k.shape[-2], q.device))
            is_causal = False
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
        )
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, Tq, Tk)
    if is_causal:
        mask = _combine(mask, causal_mask(q.shape[-2], k.shape[-2], q.device))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v  # (B, H, Tq, D)


def causal_mask(t_query: int, t_key: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, True where query i may attend key j (j <= i, end-aligned)."""
    offset = t_key - t_query  # > 0 when cached keys precede the new queries
    return torch.ones(t_query, t_key, dtype=torch.bool, device=device).tril(diagonal=offset)


def _combine(mask: torch.Tensor | None, other: torch.Tensor) -> torch.Tensor:
    return other if mask is None else mask & other


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with `n_heads` query heads sharing `n_kv_heads` key/value heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything between is GQA.
    x (B, T, d_model) -> (B, T, d_model). Pass `context` (B, S, d_model) for cross-attention.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
    ):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
            head_dim = d_model // n_heads
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
        self.d_model, self.n_heads, self.n_kv_heads, self.head_dim = d_model, n_heads, n_kv_heads, head_dim
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=bias)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=bias)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        manual: bool = False,
    ) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        source = x if context is None else context
        B, T, _ = x.shape
        S = source.shape[1]
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(source).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, Dh)
        v = self.v_proj(source).view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, Dh)
        if self.n_kv_heads != self.n_heads:  # each group of query heads shares one k/v head
            repeat = self.n_heads // self.n_kv_heads
            k = k.repeat_interleave(repeat, dim=1)  # (B, H, S, Dh)
            v = v.repeat_interleave(repeat, dim=1)  # (B, H, S, Dh)
        dropout_p = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(q, k, v, mask, is_causal, dropout_p, manual)  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out)
