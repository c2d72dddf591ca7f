"""MoBA: Mixture of Block Attention, a Llama-style LM whose attention reads a few key blocks per query.

Paper: "MoBA: Mixture of Block Attention for Long-Context LLMs" (Lu, Jiang, Liu et al., Moonshot AI,
2025, arXiv:2502.13189).

The keys are cut into blocks of `block_size` positions, and each query routes itself, like a token
to experts in a mixture of experts, to the `top_k` blocks with the highest gate score

    s_i = q · mean(K[block i])          (no parameters: the gate is the mean-pooled block key)

Blocks in the query's future are never chosen; the query's own block is always chosen (its gate
set to +inf, so it counts toward top_k) and attended causally inside. Attention over the union of
the chosen blocks is ordinary softmax attention. With top_k >= the number of blocks, every past
block is chosen and MoBA is exactly full causal attention (tested), which is how the paper
switches layers between MoBA and full attention during training.

Simplified: attention runs in the mask form of `layers.sparse_attention` (the union of selected
blocks as a boolean mask, O(T²)); the gathered O(T · top_k · block_size) form of the paper's kernel
is `block_sparse_attention` there, benchmarked in benchmarks/block_sparse_attention.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.sparse_attention import (
    causal_block_candidates,
    mean_pooled_block_scores,
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
    chunk_size: int = option(64, min=1)  # keys per block (the paper: 512 for 8K-32K contexts, 4096 at 1M)
    top_k: int = 3  # blocks each query reads, its own block included (the paper: 3)
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def check_padding(mask: torch.Tensor | None, batch: int, t_key: int) -> None:
    """A padding mask must be boolean (B, T_keys): anything else is refused by name."""
    if mask is None:
        return
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = a real token), got {mask.dtype}")
    if tuple(mask.shape) != (batch, t_key):
        raise ValueError(f"mask must have shape (B, T_keys) = ({batch}, {t_key}), got {tuple(mask.shape)}")


class MoBAAttention(MultiHeadAttention):
    """Causal attention where each query reads its top_k key blocks by gate q · mean(K_block)."""

    def __init__(self, d_model: int, n_heads: int, *, block_size: int, top_k: int, **kwargs):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.block_size, self.top_k = block_size, top_k

    def select(self, q: torch.Tensor, k: torch.Tensor, start: int) -> torch.Tensor:
        """q (B, H, Tq, Dh), k (B, H, Tk, Dh) -> selected blocks (B, H, Tq, n_blocks) bool."""
        positions = torch.arange(start, start + q.shape[-2], device=q.device)
        selectable, forced = causal_block_candidates(
            positions, n_blocks(k.shape[-2], self.block_size), self.block_size
        )
        gate = mean_pooled_block_scores(q, k, self.block_size)  # (B, H, Tq, n_blocks)
        return select_blocks(gate, self.top_k, selectable, forced)

    def _attend(self, q, k, v, mask, start):
        B, _, T, _ = q.shape
        check_padding(mask, B, k.shape[-2])
        groups = self.n_heads // self.n_kv_heads  # grouped-query heads share a key/value head
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, Tk, Dh)
        selected = self.select(q, k, start)
        positions = torch.arange(start, start + T, device=q.device)
        padding = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, Tk): True = a real token
        out = sparse_attention(q, k, v, selected, self.block_size, positions, scale=self.scale, mask=padding)
        # out: (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@register(
    "moba",
    family="attention",
    config=Config,
    summary="MoBA: each query attends to its top-k key blocks, gated by q · mean-pooled block keys.",
    paper="MoBA: Mixture of Block Attention for Long-Context LLMs",
    year=2025,
    arxiv="2502.13189",
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
class MoBA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: MoBAAttention(
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
