"""Differential Transformer: attention as the difference of two softmax maps, cancelling common noise.

Paper: "Differential Transformer" (Tianzhu Ye et al., Microsoft Research,
2024, arXiv:2410.05258).

Softmax attention never gives exactly zero weight, so on long contexts a head's map carries a floor
of "attention noise" over irrelevant tokens. DIFF attention splits each head's query and key into
two halves, computes two softmax maps and subtracts them, like a differential amplifier or
noise-cancelling headphones: what both maps share (the noise) cancels, what differs (the signal)
remains.
    DiffAttn(X) = (softmax(Q1 K1ᵀ / sqrt(d)) - λ softmax(Q2 K2ᵀ / sqrt(d))) V
    λ = exp(λ_q1 · λ_k1) - exp(λ_q2 · λ_k2) + λ_init,   λ_init = 0.8 - 0.6 exp(-0.3 (l - 1))
λ is learned through four small vectors (the reparameterisation keeps its learning dynamics in step
with the other weights); λ_init grows with the layer index l. Each head's output (2d wide: V has
twice the query width) is RMS-normalised on its own (the paper's GroupNorm / "headwise norm", as
the heads' statistics now differ a lot) and scaled by (1 - λ_init) to keep the gradient flow of a
standard transformer. A model with h DIFF heads of width d has the parameters of one with 2h
softmax heads of width d.

DIFF V2 (Ye, Dong, Sun & Wei, Jan 2026, blog post and code in microsoft/unilm; the `version=2`
default here) keeps the idea and drops what made V1 awkward in production: it doubles the query
heads (2h heads of the baseline width d) over unchanged key/value heads, runs ordinary (GQA)
attention, which any fused kernel can do, then subtracts paired heads that share keys and values,
    out_i = attn_{2i} - sigmoid(λ_{t,i}) attn_{2i+1},   λ_{t,i} = (W_λ x_t)_i per token and head,
with no per-head RMSNorm (found unstable late in large pre-training) and no exp reparameterisation
of λ. The output is h heads of width d again: the output projection is the baseline's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import KVCache, MultiHeadAttention, RMSNorm, RotaryEmbedding
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.masks import causal_mask
from bestiary.layers.positions import apply_rotary
from bestiary.options import Rule, option
from bestiary.registry import register


def lambda_init(layer_index: int) -> float:
    """λ_init = 0.8 - 0.6 exp(-0.3 (l - 1)) for the l-th layer, l = layer_index + 1 (from 1)."""
    return 0.8 - 0.6 * math.exp(-0.3 * layer_index)


def differential_attention(
    q1: torch.Tensor, k1: torch.Tensor, q2: torch.Tensor, k2: torch.Tensor, v: torch.Tensor, lam: torch.Tensor
) -> torch.Tensor:
    """(softmax(q1 k1ᵀ/sqrt(d)) - λ softmax(q2 k2ᵀ/sqrt(d))) v, causal (end-aligned for a cache).

    q1, q2 (B, H, T, d), k1, k2 (B, H, Tk, d), v (B, H, Tk, 2d), lam a scalar -> (B, H, T, 2d)."""
    scale = 1.0 / math.sqrt(q1.shape[-1])
    hidden = ~causal_mask(q1.shape[-2], k1.shape[-2], q1.device)  # (T, Tk): future keys
    map1 = (q1 @ k1.transpose(-2, -1) * scale).masked_fill(hidden, float("-inf")).softmax(dim=-1)
    map2 = (q2 @ k2.transpose(-2, -1) * scale).masked_fill(hidden, float("-inf")).softmax(dim=-1)
    return (map1 - lam * map2) @ v  # (B, H, T, 2d): the common part of the two maps cancels


class DifferentialAttention(nn.Module):
    """Causal multi-head DIFF attention, x (B, T, d_model) -> (B, T, d_model), with a KVCache.

    n_heads DIFF heads, each with two query/key halves of `head_dim` (default d_model / 2 / n_heads)
    and a value of 2 * head_dim. `layer_index` (from 0) sets λ_init."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        layer_index: int,
        head_dim: int | None = None,
        rope: RotaryEmbedding | None = None,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.head_dim = head_dim or d_model // (2 * n_heads)
        width = 2 * n_heads * self.head_dim  # q, k: 2 halves per head; v: 2 * head_dim per head
        self.q_proj = nn.Linear(d_model, width, bias=False)
        self.k_proj = nn.Linear(d_model, width, bias=False)
        self.v_proj = nn.Linear(d_model, width, bias=False)
        self.out_proj = nn.Linear(width, d_model, bias=False)
        self.rope = rope
        self.lambda_init = lambda_init(layer_index)
        self.lambda_q1 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_k1 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_q2 = nn.Parameter(torch.zeros(self.head_dim))
        self.lambda_k2 = nn.Parameter(torch.zeros(self.head_dim))
        self.head_norm = RMSNorm(2 * self.head_dim, norm_eps)  # per head, over its 2d outputs
        self.init_weights()

    def init_weights(self) -> None:
        for p in (self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2):
            nn.init.normal_(p, std=0.1)

    def init_cache(self, batch: int, **_: object) -> KVCache:
        return KVCache()

    def lam(self) -> torch.Tensor:
        """λ = exp(λ_q1 · λ_k1) - exp(λ_q2 · λ_k2) + λ_init, one scalar per layer."""
        return (
            torch.exp(self.lambda_q1 @ self.lambda_k1)
            - torch.exp(self.lambda_q2 @ self.lambda_k2)
            + self.lambda_init
        )

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        B, T, _ = x.shape
        H, d = self.n_heads, self.head_dim
        start = 0 if cache is None else cache.length

        def halves(t: torch.Tensor) -> torch.Tensor:  # (B, T, H*2d) -> (B, 2H, T, d): 2h, 2h+1 = head h
            return t.view(B, T, 2 * H, d).transpose(1, 2)

        q, k, v = halves(self.q_proj(x)), halves(self.k_proj(x)), halves(self.v_proj(x))
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:  # v stored as two d-wide halves, so keys and values share one shape
            k, v = cache.update(k, v)  # (B, 2H, Tk, d)
        t_key = k.shape[-2]
        q1, q2 = q.view(B, H, 2, T, d).unbind(dim=2)  # (B, H, T, d) each
        k1, k2 = k.view(B, H, 2, t_key, d).unbind(dim=2)
        v = v.view(B, H, 2, t_key, d).permute(0, 1, 3, 2, 4).reshape(B, H, t_key, 2 * d)  # (B, H, Tk, 2d)
        heads = differential_attention(q1, k1, q2, k2, v, self.lam())  # (B, H, T, 2d)
        heads = self.head_norm(heads) * (1 - self.lambda_init)
        return self.out_proj(heads.transpose(1, 2).reshape(B, T, H * 2 * d))  # (B, T, d_model)


class DifferentialAttentionV2(MultiHeadAttention):
    """DIFF V2: ordinary causal attention with 2 * n_heads query heads over n_kv_heads key/value heads;
    query heads 2i and 2i+1 (one GQA group: the same keys and values) are subtracted,
    out_i = attn_2i - sigmoid(λ_i) attn_2i+1, with λ (B, T, n_heads) projected from x."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int,
        head_dim: int,
        rope: RotaryEmbedding | None = None,
    ):
        super().__init__(
            d_model, 2 * n_heads, n_kv_heads=n_kv_heads, head_dim=head_dim, bias=False, causal=True, rope=rope
        )
        self.n_diff_heads = n_heads
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=False)  # h heads after the difference
        self.lambda_proj = nn.Linear(d_model, n_heads, bias=False)

    def forward(
        self, x: torch.Tensor, *, cache: KVCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_sequence(x, self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, 2h, T, d)
        k, v = self._split_heads(k, self.n_kv_heads), self._split_heads(v, self.n_kv_heads)  # (B, Hkv, T, d)
        if self.rope is not None:
            cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, Tk, d)
        if cache is None or T == 1:  # a whole sequence (causal), or one new token (sees every key)
            attn_mask, is_causal = None, cache is None
        else:  # a chunk after cached positions: the causal mask aligned to the end
            attn_mask, is_causal = causal_mask(T, k.shape[-2], x.device), False
        heads = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, is_causal=is_causal, enable_gqa=True
        )
        first, second = heads[:, 0::2], heads[:, 1::2]  # (B, h, T, d) each: pairs share keys and values
        lam = torch.sigmoid(self.lambda_proj(x)).transpose(1, 2)[..., None]  # (B, h, T, 1)
        out = first - lam * second  # (B, h, T, d)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_diff_heads * self.head_dim))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4  # DIFF heads: each is the difference of two softmax heads of width head_dim
    n_kv_heads: int | None = None  # version 2 only: key/value heads (None: n_heads)
    head_dim: int | None = None  # None: d_model // n_heads (version 2), d_model // (2 * n_heads) (version 1)
    version: int = option(2, choices=(1, 2))  # DIFF V2 (2026) or the first paper's DIFF attention
    d_ff: int = 352
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "diff_transformer",
    family="attention",
    config=Config,
    summary="Differential attention (V2 by default, V1 as version=1): the difference of two softmax maps cancels attention noise.",
    paper="Differential Transformer",
    year=2024,
    arxiv="2410.05258",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: c.version == 2 or c.head_dim is not None or c.d_model % (4 * c.n_heads) == 0,
            "d_model must be divisible by 4 * n_heads (two query halves per head, each of even width "
            "for RoPE), or give head_dim",
            ("d_model", "n_heads"),
        ),
        Rule(
            lambda c: c.head_dim is None or c.head_dim % 2 == 0, "head_dim must be even (RoPE)", ("head_dim",)
        ),
        Rule(
            lambda c: c.version == 1 or c.head_dim is not None or c.d_model % c.n_heads == 0,
            "d_model must be divisible by n_heads, or give head_dim",
            ("d_model", "n_heads", "version"),
        ),
        Rule(
            lambda c: c.version == 2 or c.n_kv_heads is None,
            "n_kv_heads needs version=2 (DIFF V1 has no grouped key/value heads)",
            ("n_kv_heads", "version"),
        ),
        Rule(
            lambda c: c.n_kv_heads is None or c.n_heads % c.n_kv_heads == 0,
            "n_heads must be a multiple of n_kv_heads (each pair of query heads shares one key/value head)",
            ("n_heads", "n_kv_heads"),
        ),
    ],
)
class DiffTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config
        head_dim = c.head_dim or (c.d_model // c.n_heads if c.version == 2 else c.d_model // (2 * c.n_heads))
        rope = RotaryEmbedding(head_dim, c.rope_theta)

        def mixer(i: int) -> nn.Module:
            if c.version == 2:
                return DifferentialAttentionV2(
                    c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads or c.n_heads, head_dim=head_dim, rope=rope
                )
            return DifferentialAttention(
                c.d_model, c.n_heads, layer_index=i, head_dim=c.head_dim, rope=rope, norm_eps=c.norm_eps
            )

        blocks = prenorm_blocks(c, mixer)
        super().__init__(config, blocks)
