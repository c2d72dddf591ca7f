"""SPLA: block-sparse attention plus linear attention, so the blocks a query skips still reach it.

Paper: "SPLA: Block Sparse Plus Linear Attention for Long Context Modeling" (Wang, Friedman & Lei,
2026, arXiv:2601.22379), as the plans' Edifice module summarises it: second-order Taylor block
selection, exact attention on the selected blocks, residual linear attention ("o_global -
o_selected", the subtraction trick) for the rest. The paper's text itself was not at hand; the
learned per-head gate on the residual part is our choice.

Block-sparse attention (MoBA, NSA) throws away every block it does not select; over a long context
that is most of the past. SPLA keeps the selected blocks exact and summarises the rest:

- selection: a query's attention mass on block b, sum_j exp(s_j) with s_j = q · k_j / sqrt(d), is
  estimated by its second-order Taylor expansion sum_j (1 + s_j + s_j² / 2) = n_b + q · Σk / sqrt(d)
  + qᵀ (Σ k kᵀ) q / (2 d): per block only the key sum and the key second moment are needed. The
  query's own block is always kept; the top_k highest estimates (own block included) are selected;
- exact part: softmax attention over the selected blocks (causal inside the own block);
- residual part: linear attention, φ(q)ᵀ S / φ(q)ᵀ z with φ = elu + 1, over the keys of the past
  blocks that were NOT selected (S = Σ φ(k) vᵀ, z = Σ φ(k) over them);
- output: o = o_sparse + g · o_residual, g = sigmoid(Linear(x)) per head.

With top_k >= the number of blocks nothing is left unselected, the residual is exactly zero and
SPLA is full causal attention with the same q, k, v weights (tested).

Simplified: attention runs in the mask form of `layers.sparse_attention`, and the residual state
is summed directly over the unselected blocks (an efficient kernel keeps running prefix states and
subtracts the few selected blocks' states: the same sum).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.linear_attention import elu_plus_one
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
from bestiary.layers.sparse_attention import (
    causal_block_candidates,
    n_blocks,
    select_blocks,
    sparse_attention,
)
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 352
    max_seq_len: int = 4096
    chunk_size: int = option(64, min=1)  # keys per block
    top_k: int = 8  # blocks attended exactly per query, its own block included
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def block_sums(t: torch.Tensor, block_size: int) -> torch.Tensor:
    """t (..., T, *rest) -> (..., n_blocks, *rest): the sum over each block of positions (dim 3)."""
    B, H, T = t.shape[:3]
    pad = n_blocks(T, block_size) * block_size - T
    padded = torch.cat([t, t.new_zeros(B, H, pad, *t.shape[3:])], dim=2)  # zeros add nothing
    return padded.unflatten(2, (-1, block_size)).sum(3)


def taylor_block_mass(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """q (B, H, Tq, D), k (B, H, Tk, D) -> (B, H, Tq, n_blocks): Σ_j (1 + s_j + s_j² / 2) per block."""
    scale = q.shape[-1] ** -0.5
    ones = torch.ones_like(k[..., :1])  # (B, H, Tk, 1)
    count = block_sums(ones, block_size)[..., 0]  # (B, H, n): keys per block
    first = block_sums(k, block_size)  # (B, H, n, D): Σ k
    second = block_sums(k[..., :, None] * k[..., None, :], block_size)  # (B, H, n, D, D): Σ k kᵀ
    linear = q @ first.transpose(-2, -1) * scale  # (B, H, Tq, n)
    quadratic = torch.einsum("bhtd,bhnde,bhte->bhtn", q, second, q) * scale**2 / 2
    return count[:, :, None, :] + linear + quadratic


def residual_linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, skipped: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Linear attention of q (B, H, Tq, D) over the keys of the blocks marked in `skipped`
    (B, H, Tq, n_blocks); zero for a query that skips nothing."""
    phi_q, phi_k = elu_plus_one(q), elu_plus_one(k)
    states = block_sums(phi_k[..., :, None] * v[..., None, :], block_size)  # (B, H, n, D, Dv): Σ φ(k) vᵀ
    normalisers = block_sums(phi_k, block_size)  # (B, H, n, D): Σ φ(k)
    numerator = torch.einsum("bhtd,bhtn,bhnde->bhte", phi_q, skipped.to(q.dtype), states)  # (B, H, Tq, Dv)
    denominator = torch.einsum("bhtd,bhtn,bhnd->bht", phi_q, skipped.to(q.dtype), normalisers)[..., None]
    return numerator / denominator.clamp(min=1e-6)  # φ > 0: the denominator is 0 only when nothing is skipped


class SPLAAttention(MultiHeadAttention):
    """Exact attention on top_k blocks (Taylor-estimated mass) plus gated linear attention on the rest."""

    def __init__(self, d_model: int, n_heads: int, *, block_size: int, top_k: int, **kwargs):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.block_size, self.top_k = block_size, top_k
        self.residual_gate = nn.Linear(d_model, n_heads)  # how much of the skipped past each head lets in

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k = self._split_heads(k, self.n_kv_heads)  # (B, Hkv, T, Dh)
        v = self._split_heads(v, self.n_kv_heads)
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, start + T, Dh)
        groups = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, Tk, Dh)
        positions = torch.arange(start, start + T, device=x.device)
        selected, skipped = self.select(q, k, positions)
        exact = sparse_attention(
            q, k, v, selected, self.block_size, positions, scale=self.scale
        )  # (B, H, T, Dh)
        residual = residual_linear_attention(q, k, v, skipped, self.block_size)  # (B, H, T, Dh)
        gate = torch.sigmoid(self.residual_gate(x)).transpose(1, 2)[..., None]  # (B, H, T, 1)
        out = exact + gate * residual
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))

    def select(
        self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(selected, skipped) blocks, each (B, H, Tq, n_blocks) bool."""
        selectable, forced = causal_block_candidates(
            positions, n_blocks(k.shape[-2], self.block_size), self.block_size
        )
        selected = select_blocks(taylor_block_mass(q, k, self.block_size), self.top_k, selectable, forced)
        return selected, selectable & ~selected


@register(
    "spla",
    family="attention",
    config=Config,
    summary="SPLA: exact attention on Taylor-selected blocks plus gated linear attention over the unselected ones.",
    paper="SPLA: Block Sparse Plus Linear Attention for Long Context Modeling",
    year=2026,
    arxiv="2601.22379",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=64,
        max_seq_len=64,
        chunk_size=3,
        top_k=2,
    ),
    outputs="logits (B, T, vocab_size)",
)
class SPLA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: SPLAAttention(
                c.d_model,
                c.n_heads,
                block_size=c.chunk_size,
                top_k=c.top_k,
                n_kv_heads=c.n_kv_heads,
                bias=False,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
