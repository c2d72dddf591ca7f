"""MTA: Multi-Token Attention, convolutions over attention scores across queries, keys and heads.

Paper: "Multi-Token Attention" (Olga Golovneva, Tianlu Wang, Jason Weston, Sainbayar Sukhbaatar,
2025, arXiv:2504.00927).

A softmax weight depends on one query and one key vector: to find "the sentence where Alice and
the rabbit both appear", a single dot product has to encode both conditions. MTA lets weights
depend on several queries, keys and heads at once:

- key-query convolution (pre-softmax): each head convolves its score map Q Kᵀ / sqrt(d) with a
  learned c_q x c_k kernel, over the previous c_q queries (causal) and c_k neighbouring keys:
      A = softmax(Mask_-inf(Conv2d_θ(Mask_0(Q Kᵀ / sqrt(d)))))
  Mask_0 zeroes scores of future keys before the convolution, so no future key leaks in;
  Mask_-inf hides them from the softmax after it. A key next to a strongly matching one, or one
  matched by the previous query, can now get weight.
- head-mixing convolution (post-softmax): heads are split in groups of c_h and the attention
  maps of a group are mixed by a learned c_h x c_h matrix, so one head's match can use another's.

Both start as the identity (a centre tap of 1, an identity mixing matrix): MTA starts as ordinary
attention. The convolution needs the last c_q - 1 queries' scores against every key, so the cache
keeps past (rotated) queries beside the keys and values.

Simplified: MTA in every layer (the paper uses it in every 4th, c_q=6, c_k=11, c_h=2); the
group-norm-with-depth-scaling on head outputs is left out; the key-query convolution is applied
pre-softmax and the head mixing post-softmax (the paper's main configuration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.layers.attention_variants import KVExtrasCache
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.positions import apply_rotary
from bestiary.options import Rule, option
from bestiary.registry import register


def multi_token_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kernel: torch.Tensor,
    head_mix: torch.Tensor,
    past_queries: torch.Tensor | None = None,
) -> torch.Tensor:
    """Causal MTA over the last T of Tk positions.

    q (B, H, T, D): the new queries, at positions Tk - T .. Tk - 1; k, v (B, H, Tk, D);
    kernel (H, c_q, c_k): out[i, j] = sum_{a, b} kernel[a, b] S[i + a - (c_q - 1), j + b - (ceil(c_k/2) - 1)]
    (row c_q - 1 is query i itself, column ceil(c_k/2) - 1 is key j itself; S = 0 outside the map);
    head_mix (H / c_h, c_h, c_h); past_queries (B, H, P, D): up to c_q - 1 queries before q."""
    B, H, T, D = q.shape
    t_key = k.shape[-2]
    c_q, c_k = kernel.shape[-2:]
    rows = q if past_queries is None else torch.cat([past_queries, q], dim=-2)  # (B, H, P + T, D)
    n_rows = rows.shape[-2]
    scores = rows @ k.transpose(-2, -1) / math.sqrt(D)  # (B, H, P + T, Tk)
    row_pos = torch.arange(t_key - n_rows, t_key, device=q.device)[:, None]  # absolute query positions
    future = torch.arange(t_key, device=q.device)[None, :] > row_pos  # (P + T, Tk)
    scores = scores.masked_fill(future, 0.0)  # Mask_0: future keys add nothing to the convolution
    # rows before position 0 (or before the cached queries) are zeros; keys padded on both sides
    left = (c_k + 1) // 2 - 1
    scores = F.pad(scores, (left, c_k - 1 - left, c_q - 1 - (n_rows - T), 0))  # (B, H, c_q-1+T, Tk+c_k-1)
    scores = F.conv2d(scores, kernel[:, None], groups=H)  # (B, H, T, Tk): one kernel per head
    weights = scores.masked_fill(future[-T:], float("-inf")).softmax(dim=-1)  # Mask_-inf, softmax
    groups, c_h, _ = head_mix.shape
    weights = weights.view(B, groups, c_h, T, t_key)
    weights = torch.einsum("gij,bgjtk->bgitk", head_mix, weights).reshape(B, H, T, t_key)  # mix heads
    return weights @ v  # (B, H, T, D)


class MultiTokenAttention(MultiHeadAttention):
    """Causal MultiHeadAttention (projections, RoPE, KVCache of k and v) with MTA's convolutions.

    kernel (H, c_q, c_k) and head_mix (H / c_h, c_h, c_h) start as identities."""

    def __init__(
        self, d_model: int, n_heads: int, *, query_kernel: int, key_kernel: int, head_group: int, **kwargs
    ):
        super().__init__(d_model, n_heads, causal=True, bias=False, **kwargs)
        if n_heads % head_group:
            raise ValueError(f"n_heads={n_heads} must be a multiple of head_group={head_group}")
        self.kernel = nn.Parameter(torch.zeros(n_heads, query_kernel, key_kernel))
        self.head_mix = nn.Parameter(torch.zeros(n_heads // head_group, head_group, head_group))
        self.init_weights()

    def init_weights(self) -> None:
        """Identity: the centre tap (this query, this key) is 1, each head keeps its own map."""
        _, c_q, c_k = self.kernel.shape
        with torch.no_grad():
            self.kernel.zero_()
            self.kernel[:, c_q - 1, (c_k + 1) // 2 - 1] = 1.0
            self.head_mix.copy_(torch.eye(self.head_mix.shape[-1]).expand_as(self.head_mix))

    def init_cache(self, batch: int, **_: object) -> KVExtrasCache:
        return KVExtrasCache(("queries",))

    def forward(
        self, x: torch.Tensor, *, cache: KVExtrasCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if mask is not None:
            raise ValueError("MultiTokenAttention takes no padding mask")
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k, v = self._split_heads(k, self.n_kv_heads), self._split_heads(v, self.n_kv_heads)
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past_queries = None
        if cache is not None:
            k, v = cache.update(k, v)  # (B, H_kv, Tk, Dh)
            old, n_past = cache.extras["queries"], self.kernel.shape[1] - 1
            if old is not None and n_past > 0:  # the convolution reads the last c_q - 1 queries' scores
                past_queries = old[..., -n_past:, :]  # (B, H, P, Dh), P <= c_q - 1
            cache.update_extra("queries", q)
        group = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B, H, Tk, Dh)
        heads = multi_token_attention(q, k, v, self.kernel, self.head_mix, past_queries)  # (B, H, T, Dh)
        return self.out_proj(heads.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int = 352
    max_seq_len: int = 1024
    query_kernel: int = option(6, min=1)  # c_q: this query and the c_q - 1 before it
    key_kernel: int = option(11, min=1)  # c_k: keys around each key
    head_group: int = option(2, min=1)  # c_h: heads mixed together
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "mta",
    family="attention",
    config=Config,
    summary="Multi-Token Attention: convolutions over the score map (queries x keys) and across heads.",
    paper="Multi-Token Attention",
    year=2025,
    arxiv="2504.00927",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=64,
        max_seq_len=64,
        query_kernel=3,
        key_kernel=3,
    ),
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: c.n_heads % c.head_group == 0,
            "n_heads={n_heads} must be a multiple of head_group={head_group}",
            ("n_heads", "head_group"),
        )
    ],
)
class MTA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.head_dim or c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: MultiTokenAttention(
                c.d_model,
                c.n_heads,
                query_kernel=c.query_kernel,
                key_kernel=c.key_kernel,
                head_group=c.head_group,
                n_kv_heads=c.n_kv_heads,
                head_dim=c.head_dim,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
