"""InfLLM-V2: dense attention that switches to block-sparse attention for long contexts, with no new
parameters.

Paper: "MiniCPM4: Ultra-Efficient LLMs on End Devices" (MiniCPM Team, 2025, arXiv:2506.07900),
section "InfLLM v2: trainable dense-to-sparse switchable attention".

NSA adds three branches, each with its own keys and values, so a dense model cannot be turned into
an NSA model cheaply. InfLLM-V2 keeps ONE attention with the dense model's own q, k, v
projections and changes only which keys each query reads:

1. compressed keys without parameters: the mean of each window of `compress_size` keys, windows
   starting every `compress_stride` positions (overlapping when the stride is smaller);
2. relevance of each compressed key to a query: softmax(q · k_cmp / sqrt(d)) over the complete
   windows, summed over the query heads sharing a key/value head (one choice per GQA group);
3. a key block (`block_size` keys) scores the MAX over the windows overlapping it;
4. each query attends to its top_k blocks, the first block and its 2 most recent blocks always
   included (they replace NSA's sliding window branch).

Short contexts stay dense: a query whose context (its position + 1) is at most `dense_len` reads
every past key, so a model trained dense behaves identically on short inputs and the switch is
per query, which keeps cached decoding equal to the full forward (tested). With top_k >= the
number of blocks every query is dense too (tested).

Simplified: attention runs in the mask form of `layers.sparse_attention` (the paper's kernels
skip unselected blocks, and fuse the relevance computation to avoid materialising it).
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
    masked_softmax,
    n_blocks,
    select_blocks,
    sparse_attention,
)
from bestiary.options import Rule, option
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
    chunk_size: int = option(64, min=1)  # keys per selected block (the paper: 64)
    compress_size: int = option(32, min=1)  # keys per compressed window (the paper: 32)
    compress_stride: int = option(16, min=1)  # start of one window to the next (the paper: 16)
    top_k: int = (
        16  # blocks per query, the first and 2 most recent included (the paper: 16 blocks of 64 keys)
    )
    dense_len: int = option(128, min=0)  # a query with at most this much context attends densely
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


RULES = (
    Rule(
        lambda c: c.compress_size >= c.compress_stride,
        "compress_size must be >= compress_stride (windows may overlap, never leave gaps)",
        ("compress_size", "compress_stride"),
    ),
)


def mean_pool_windows(k: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """k (..., T, D) -> (..., n_windows, D): the mean of k[s : s + size] for s = 0, stride, ...,
    complete windows only."""
    if k.shape[-2] < size:
        return k[..., :0, :]
    return k.unfold(-2, size, stride).mean(-1)  # unfold: (..., n_windows, D, size)


class InfLLMV2Attention(MultiHeadAttention):
    """Causal attention over the top_k key blocks chosen by parameter-free compressed keys."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        block_size: int,
        compress_size: int,
        compress_stride: int,
        top_k: int,
        dense_len: int,
        **kwargs,
    ):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.block_size, self.top_k, self.dense_len = block_size, top_k, dense_len
        self.compress_size, self.compress_stride = compress_size, compress_stride

    def block_relevance(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """q (B, H, Tq, Dh), k (B, Hkv, Tk, Dh) -> block scores (B, Hkv, Tq, n_blocks)."""
        B, H, Tq, _ = q.shape
        groups = H // self.n_kv_heads
        k_cmp = mean_pool_windows(k, self.compress_size, self.compress_stride)  # (B, Hkv, n_win, Dh)
        starts = torch.arange(k_cmp.shape[-2], device=q.device) * self.compress_stride
        complete = starts[None, :] + self.compress_size - 1 <= positions[:, None]  # (Tq, n_win)
        scores = q @ k_cmp.repeat_interleave(groups, dim=1).transpose(-2, -1) * self.head_dim**-0.5
        probs = masked_softmax(scores, complete)  # (B, H, Tq, n_win)
        window_score = probs.view(B, self.n_kv_heads, groups, Tq, -1).sum(2)  # (B, Hkv, Tq, n_win)
        # block b covers keys [b * bs, (b + 1) * bs); window w covers [start_w, start_w + size)
        nb = n_blocks(k.shape[-2], self.block_size)
        block_start = torch.arange(nb, device=q.device)[:, None] * self.block_size  # (nb, 1)
        overlaps = (starts[None, :] < block_start + self.block_size) & (
            starts[None, :] + self.compress_size > block_start
        )  # (nb, n_win)
        per_block = window_score[..., None, :].masked_fill(~overlaps, 0.0)  # (B, Hkv, Tq, nb, n_win)
        if per_block.shape[-1] == 0:  # no complete window yet: every block scores 0
            return window_score.new_zeros(B, self.n_kv_heads, Tq, nb)
        return per_block.amax(-1)  # probabilities are >= 0, so 0 is a neutral fill

    def select(self, q: torch.Tensor, k: torch.Tensor, start: int) -> torch.Tensor:
        """Selected blocks (B, H, Tq, n_blocks): top_k by relevance, or all past blocks for a query
        whose context fits in dense_len."""
        positions = torch.arange(start, start + q.shape[-2], device=q.device)
        nb = n_blocks(k.shape[-2], self.block_size)
        selectable, forced = causal_block_candidates(positions, nb, self.block_size, n_local=2, initial=True)
        relevance = self.block_relevance(q, k, positions)
        selected = select_blocks(relevance, self.top_k, selectable, forced)  # (B, Hkv, Tq, nb)
        dense = (positions < self.dense_len)[:, None] & (selectable | forced)  # (Tq, nb)
        selected = selected | dense
        return selected.repeat_interleave(self.n_heads // self.n_kv_heads, dim=1)  # (B, H, Tq, nb)

    def _attend(self, q, k, v, mask, start):
        if mask is not None:
            raise ValueError("InfLLMV2Attention takes no padding mask: batch prompts of equal length")
        B, _, T, _ = q.shape
        selected = self.select(q, k, start)
        groups = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, Tk, Dh)
        positions = torch.arange(start, start + T, device=q.device)
        out = sparse_attention(
            q, k, v, selected, self.block_size, positions, scale=self.scale
        )  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@register(
    "infllm_v2",
    family="attention",
    config=Config,
    rules=RULES,
    summary="InfLLM-V2: dense-to-sparse switchable attention; blocks chosen by parameter-free compressed keys.",
    paper="MiniCPM4: Ultra-Efficient LLMs on End Devices",
    year=2025,
    arxiv="2506.07900",
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
        chunk_size=4,
        compress_size=2,
        compress_stride=1,
        top_k=3,
        dense_len=6,
    ),
    outputs="logits (B, T, vocab_size)",
)
class InfLLMV2(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: InfLLMV2Attention(
                c.d_model,
                c.n_heads,
                block_size=c.chunk_size,
                compress_size=c.compress_size,
                compress_stride=c.compress_stride,
                top_k=c.top_k,
                dense_len=c.dense_len,
                n_kv_heads=c.n_kv_heads,
                bias=False,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
