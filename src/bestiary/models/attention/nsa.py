"""NSA: Native Sparse Attention, three attention branches over the same queries, mixed by gates.

Paper: "Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention" (Yuan,
Gao, Dai et al., DeepSeek, 2025, arXiv:2502.11089).

Each query attends three times, to three different views of the past:

1. compressed: each complete block of `block_size` keys (values) is squeezed into ONE token by a
   learned MLP over the block's keys plus an intra-block position embedding; the query attends to
   these coarse tokens (a summary of the whole past at 1/block_size the cost);
2. selected: the compressed attention probabilities say which blocks matter; summed over the
   query heads that share a key/value head (one selection per GQA group, so a kernel loads each
   block once), the top_k blocks are attended at full resolution. The first block and the two
   most recent ones (the query's own, causally masked, and the one before) are always included;
3. sliding window: the last `window` keys, for local patterns.

    o = g_cmp · o_cmp + g_slc · o_slc + g_win · o_win,      g = sigmoid(Linear(x)) per head and branch

With top_k >= the number of blocks, the selected branch is full causal attention (tested).

Simplified: compression and selection share one block size with stride = block size (the paper
compresses overlapping blocks of 32 with stride 16 and selects blocks of 64); the three branches
share one key/value projection (the paper gives each branch its own, against shortcut learning);
attention runs in the mask form of `layers.sparse_attention`, not the paper's Triton kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.masks import sliding_window_mask
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
from bestiary.layers.sparse_attention import (
    causal_block_candidates,
    masked_softmax,
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
    chunk_size: int = option(32, min=1)  # keys per compressed / selected block
    top_k: int = 16  # selected blocks per query, the first and the 2 most recent included (the paper: 16)
    window: int = option(512, min=1)  # sliding-window branch span (the paper: 512)
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


class NSAAttention(nn.Module):
    """Compressed + selected + sliding-window causal attention, gated per head. (B, T, D) -> (B, T, D)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        block_size: int,
        top_k: int,
        window: int,
        rope: RotaryEmbedding | None = None,
    ):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
        self.d_model, self.n_heads, self.n_kv_heads = d_model, n_heads, n_kv_heads
        self.head_dim = head_dim = d_model // n_heads
        self.block_size, self.top_k, self.window, self.rope = block_size, top_k, window, rope
        self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=False)
        # φ: a block of keys (values) with its intra-block positions -> one compressed key (value)
        self.block_pos = nn.Parameter(torch.randn(block_size, head_dim) * 0.02)
        self.compress_k = nn.Sequential(
            nn.Linear(block_size * head_dim, head_dim), nn.SiLU(), nn.Linear(head_dim, head_dim)
        )
        self.compress_v = nn.Sequential(
            nn.Linear(block_size * head_dim, head_dim), nn.SiLU(), nn.Linear(head_dim, head_dim)
        )
        self.gate_proj = nn.Linear(d_model, 3 * n_heads)  # one gate per head per branch
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)

    def init_cache(self, batch: int, **_: object) -> KVCache:
        """Every past key and value: compressed tokens are rebuilt from them at each call."""
        return KVCache()

    def compress(self, t: torch.Tensor, mlp: nn.Module) -> torch.Tensor:
        """t (B, Hkv, Tk, Dh) -> one token per complete block (B, Hkv, Tk // block_size, Dh)."""
        n_complete = t.shape[-2] // self.block_size
        blocks = t[..., : n_complete * self.block_size, :].unflatten(-2, (n_complete, self.block_size))
        blocks = blocks + self.block_pos  # (B, Hkv, n, block_size, Dh): where in its block each key sits
        return mlp(blocks.flatten(-2))  # (B, Hkv, n, Dh)

    def compressed_branch(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, positions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention over compressed blocks: output (B, H, Tq, Dh) and probabilities (B, H, Tq, n)."""
        groups = self.n_heads // self.n_kv_heads
        k_cmp = self.compress(k, self.compress_k).repeat_interleave(groups, dim=1)  # (B, H, n, Dh)
        v_cmp = self.compress(v, self.compress_v).repeat_interleave(groups, dim=1)
        block_end = (torch.arange(k_cmp.shape[-2], device=q.device) + 1) * self.block_size - 1
        complete = block_end[None, :] <= positions[:, None]  # (Tq, n): only blocks wholly in the past
        probs = masked_softmax(q @ k_cmp.transpose(-2, -1) * self.head_dim**-0.5, complete)
        return probs @ v_cmp, probs

    def select(self, probs: torch.Tensor, t_key: int, positions: torch.Tensor) -> torch.Tensor:
        """Compressed probabilities (B, H, Tq, n) -> selected blocks (B, H, Tq, n_blocks), one
        choice per group of query heads sharing a key/value head."""
        B, H, Tq, n = probs.shape
        group_score = probs.view(B, self.n_kv_heads, H // self.n_kv_heads, Tq, n).sum(2)  # (B, Hkv, Tq, n)
        nb = n_blocks(t_key, self.block_size)
        group_score = F.pad(group_score, (0, nb - n))  # the partial last block has no compressed token
        selectable, forced = causal_block_candidates(positions, nb, self.block_size, n_local=2, initial=True)
        selected = select_blocks(group_score, self.top_k, selectable, forced)  # (B, Hkv, Tq, nb)
        return selected.repeat_interleave(H // self.n_kv_heads, dim=1)  # (B, H, Tq, nb)

    def branches(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q (B, H, Tq, Dh), k and v (B, Hkv, Tk, Dh) -> the three branch outputs, each (B, H, Tq, Dh)."""
        positions = torch.arange(start, start + q.shape[-2], device=q.device)
        o_cmp, probs = self.compressed_branch(q, k, v, positions)
        selected = self.select(probs, k.shape[-2], positions)
        groups = self.n_heads // self.n_kv_heads
        k_rep, v_rep = (
            k.repeat_interleave(groups, dim=1),
            v.repeat_interleave(groups, dim=1),
        )  # (B, H, Tk, Dh)
        o_slc = sparse_attention(q, k_rep, v_rep, selected, self.block_size, positions)
        window = sliding_window_mask(q.shape[-2], k.shape[-2], self.window, q.device)
        o_win = scaled_dot_product_attention(q, k, v, window)
        return o_cmp, o_slc, o_win

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, start + T, Dh)
        o_cmp, o_slc, o_win = self.branches(q, k, v, start)
        gates = torch.sigmoid(self.gate_proj(x)).view(B, T, self.n_heads, 3).transpose(1, 2)  # (B, H, T, 3)
        out = gates[..., 0:1] * o_cmp + gates[..., 1:2] * o_slc + gates[..., 2:3] * o_win  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@register(
    "nsa",
    family="attention",
    config=Config,
    summary="NSA: compressed-block, selected-block and sliding-window attention branches mixed by sigmoid gates.",
    paper="Native Sparse Attention: Hardware-Aligned and Natively Trainable Sparse Attention",
    year=2025,
    arxiv="2502.11089",
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
        chunk_size=2,
        top_k=4,
        window=3,
    ),
    outputs="logits (B, T, vocab_size)",
)
class NSA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: NSAAttention(
                c.d_model,
                c.n_heads,
                n_kv_heads=c.n_kv_heads,
                block_size=c.chunk_size,
                top_k=c.top_k,
                window=c.window,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
