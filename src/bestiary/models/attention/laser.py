"""LASER: attention in the exponential space of the values, for larger gradients through softmax.

Paper: "LASER: Attention with Exponential Transformation" (Sai Surya Duvvuri, Inderjit S. Dhillon,
2024, arXiv:2411.03493).

The gradient reaching q and k through softmax attention is scaled by the attention probabilities
(the softmax Jacobian diag(a) - a aᵀ): when a head saturates, most weights are tiny and so are the
gradients. LASER attends over exp(V) and takes the log of the result:
    LASER(Q, K, V) = log(softmax(Q Kᵀ / sqrt(d)) exp(V))
a weighted log-sum-exp of the values, a soft maximum. Its Jacobian with respect to the weights is
divided by the output mixture, so small weights no longer shrink the gradient (Sec. 3). To stay
finite it is computed with the "log-weighted-sum-exp" trick: with m_c = max_j V_jc per channel,
    log(A exp(V)) = m + log(A exp(V - m))
so every exponential is <= 1 (the attention kernel itself is unchanged: it just reads exp(V - m)).

Simplified: m is the maximum over every key in the (cached) sequence; a causal query only averages
keys it may see, which stays finite as long as a column of V does not span ~80 (float32 exp
underflow). Llama-style blocks around it (RoPE, RMSNorm, SwiGLU).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.registry import register


def laser_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Causal log(softmax(q kᵀ / sqrt(d)) exp(v)), q (B, H, T, D), k and v (B, H_kv, Tk, D)."""
    peak = v.amax(dim=-2, keepdim=True).detach()  # (B, H_kv, 1, D): m, a constant for the gradient
    mixture = scaled_dot_product_attention(q, k, torch.exp(v - peak), is_causal=True)  # (B, H, T, D)
    peak = peak.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # (B, H, 1, D): per query head
    return torch.log(mixture) + peak


class LaserAttention(MultiHeadAttention):
    """Causal MultiHeadAttention (projections, RoPE, grouped k/v heads, KVCache) with the weighted
    average of values replaced by LASER's weighted log-sum-exp."""

    def __init__(self, d_model: int, n_heads: int, **kwargs):
        super().__init__(d_model, n_heads, causal=True, bias=False, **kwargs)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, start: int
    ) -> torch.Tensor:
        if mask is not None:
            raise ValueError("LaserAttention takes no padding mask")
        B, _, T, _ = q.shape
        heads = laser_attention(q, k, v)  # (B, H, T, Dh)
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
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "laser",
    family="attention",
    config=Config,
    summary="LASER: attention over exp(V) followed by log, a weighted log-sum-exp with larger gradients.",
    paper="LASER: Attention with Exponential Transformation",
    year=2024,
    arxiv="2411.03493",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class LaserLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.head_dim or c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: LaserAttention(
                c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, rope=rope
            ),
        )
        super().__init__(config, blocks)
