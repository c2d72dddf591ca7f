"""Scaled dot-product attention and multi-head attention (MHA, and MQA/GQA via n_kv_heads).

"Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762); multi-query attention from
"Fast Transformer Decoding: One Write-Head is All You Need" (Shazeer, 2019, arXiv:1911.02150);
grouped-query attention from "GQA: Training Generalized Multi-Query Transformer Models"
(Ainslie et al., 2023, arXiv:2305.13245).

Two paths compute the same thing: `F.scaled_dot_product_attention` (fast, fused) and a readable
manual one (`manual=True`), which is what a learner should read first. Tests check they agree.

`MultiHeadAttention.forward` also takes, all optional:
  rope        a `RotaryEmbedding` (or any callable (x, positions) -> x) applied to q and k at absolute positions start_pos .. start_pos+T-1;
  kv_cache    a `KVCache`: new keys/values are appended for layer `layer_idx`, attention runs over
              everything cached (cached and uncached forwards give the same outputs);
  attn_bias   an additive float score bias broadcastable to (B, H, Tq, Tk) (ALiBi, T5);
  window      sliding-window size for causal attention;
  rope_context  with `context` and `rope`: rotate the context keys by their own positions 0..S-1
              (cross-attention between two sequences that share a position axis).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.masks import causal_mask, combine_masks, sliding_window_mask
from bestiary.layers.positions import RotaryEmbedding, apply_rotary

__all__ = ["MultiHeadAttention", "causal_mask", "scaled_dot_product_attention"]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    manual: bool = False,
    *,
    scale: float | None = None,
    attn_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q kᵀ * scale + attn_bias) v over the last two dims; scale defaults to 1/sqrt(d).

    q (B, H, Tq, D), k and v (B, H_kv, Tk, D) with H a multiple of H_kv (grouped-query). `mask` is boolean (True = may attend), broadcastable to
    (B, H, Tq, Tk). `is_causal` lets query i see keys <= i (aligned to the end when Tk > Tq, as in
    generation with a cache). A query row that may see no key at all (a padding position) is
    allowed to see every key instead, so the output stays finite; such rows are padding and
    should be ignored by the caller.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    t_query, t_key = q.shape[-2], k.shape[-2]
    n_heads, n_kv_heads = q.shape[1], k.shape[1]
    if n_heads % n_kv_heads:
        raise ValueError(f"q has {n_heads} heads, not a multiple of the {n_kv_heads} key/value heads")
    gqa = n_kv_heads != n_heads
    if gqa and manual:  # each group of query heads shares one k/v head: repeat them explicitly
        k = k.repeat_interleave(n_heads // n_kv_heads, dim=1)  # (B, H, Tk, D)
        v = v.repeat_interleave(n_heads // n_kv_heads, dim=1)
    if is_causal and t_query == 1:  # one new query at the end sees every key: nothing to mask
        is_causal = False
    if not manual and is_causal and mask is None and attn_bias is None and t_query == t_key:
        # the fused kernels take is_causal directly (no mask tensor): the fast path for training
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale, enable_gqa=gqa
        )
    if is_causal:
        mask = combine_masks(mask, causal_mask(t_query, t_key, q.device))
    if mask is not None:
        mask = mask.bool()
        mask = mask | ~mask.any(dim=-1, keepdim=True)  # fully masked rows -> attend all (finite output)
    if not manual:
        attn_mask = mask
        if attn_bias is not None:  # SDPA adds a float mask to the scores
            attn_mask = attn_bias.to(q.dtype)
            if mask is not None:
                attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
        )
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, Tq, Tk): how well query i matches key j
    if attn_bias is not None:
        scores = scores + attn_bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight on hidden keys
    weights = scores.softmax(dim=-1)  # each row sums to 1
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v  # (B, H, Tq, D): weighted average of the values


class MultiHeadAttention(nn.Module):
    """Self- or cross-attention with `n_heads` query heads sharing `n_kv_heads` key/value heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything between is GQA.
    x (B, T, d_model) -> (B, T, d_model). Pass `context` (B, S, d_model) for cross-attention.
    `scale` overrides 1/sqrt(head_dim) (T5 uses 1.0: its init absorbs the scaling).
    `fused_qkv=True` keeps q, k and v in one `qkv_proj` Linear, rows stacked q | k | v (GPT-2's
    `c_attn`, GPT-NeoX, Phi); otherwise three, `q_proj` / `k_proj` / `v_proj` (Llama, BERT, T5).
    Same math either way; the choice only decides how the checkpoint names them.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        bias: bool = True,
        dropout: float = 0.0,
        scale: float | None = None,
        fused_qkv: bool = False,
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
        self.scale = scale
        self.fused_qkv = fused_qkv
        if fused_qkv:
            self.qkv_proj = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * head_dim, bias=bias)
        else:
            self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=bias)
            self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
            self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=bias)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=bias)

    def _project_qkv(
        self, x: torch.Tensor, source: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q from x; k and v from source (x itself for self-attention). Each (B, T, heads * Dh)."""
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        if self.fused_qkv:
            if source is x:
                return self.qkv_proj(x).split([q_size, kv_size, kv_size], dim=-1)
            # cross-attention: the q rows read x, the k and v rows read the context
            weight, bias = self.qkv_proj.weight, self.qkv_proj.bias
            q = F.linear(x, weight[:q_size], None if bias is None else bias[:q_size])
            kv = F.linear(source, weight[q_size:], None if bias is None else bias[q_size:])
            return (q, *kv.split([kv_size, kv_size], dim=-1))
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if (
            source is x
            and torch.is_grad_enabled()
            and all(type(p) is nn.Linear for p in projections)  # not wrapped (LoRA) or quantised
        ):
            # Training: one matmul against the three stacked weight matrices is the same math as
            # three, but faster (and its backward is one matmul instead of three plus a sum).
            # Without gradients (generation, one token at a time) stacking would copy every
            # weight per call, costing as much as the matmul itself, so we keep three there.
            weight = torch.cat([p.weight for p in projections])
            bias = None
            if any(p.bias is not None for p in projections):  # (DINOv3's k_proj alone has no bias)
                bias = torch.cat(
                    [p.bias if p.bias is not None else x.new_zeros(p.out_features) for p in projections]
                )
            return F.linear(x, weight, bias).split([q_size, kv_size, kv_size], dim=-1)
        return self.q_proj(x), self.k_proj(source), self.v_proj(source)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        manual: bool = False,
        *,
        rope: RotaryEmbedding | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        start_pos: int = 0,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        attn_bias: torch.Tensor | None = None,
        window: int | None = None,
        rope_context: bool = False,
    ) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        source = x if context is None else context
        B, T, _ = x.shape
        S = source.shape[1]
        q, k, v = self._project_qkv(x, source)
        q = q.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = k.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, Dh)
        v = v.view(B, S, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, S, Dh)
        if rope is not None:  # rotate by absolute position; cached keys were rotated when stored
            positions = torch.arange(start_pos, start_pos + T, device=x.device)
            if isinstance(rope, RotaryEmbedding) and context is None:
                cos, sin = rope.cos_sin(positions)  # one table for q and k
                q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            else:
                q = rope(q, positions)
                if context is None:
                    k = rope(k, positions)
            # cross-attention over a sequence with its own positions 0..S-1
            if context is not None and rope_context:
                k = rope(k, torch.arange(S, device=x.device))
        if kv_cache is not None:
            k, v = kv_cache.update(layer_idx, k, v)  # (B, Hkv, start_pos + T, Dh)
        if window is not None:  # sliding window: also causal, so it replaces is_causal
            mask = combine_masks(mask, sliding_window_mask(T, k.shape[-2], window, x.device))
            is_causal = False
        # with n_kv_heads < n_heads, k and v stay (B, Hkv, Tk, Dh): each group of n_heads / n_kv_heads
        # query heads shares one k/v head (SDPA's enable_gqa; the manual path repeats them)
        dropout_p = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(
            q, k, v, mask, is_causal, dropout_p, manual, scale=self.scale, attn_bias=attn_bias
        )  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out)
