"""Based: linear attention with a 2nd-order Taylor feature map, plus small sliding-window attention.

Paper: "Simple linear attention language models balance the recall-throughput tradeoff" (Arora,
Eyuboglu, Zhang, Timalsina, Alberti, Zinsley, Zou, Rudra & Ré, 2024, arXiv:2402.18668).

Recurrent models forget: a fixed-size state cannot recall arbitrary earlier tokens. Based trades
state size against recall with two cheap mixers:

- linear attention with phi(x) = [1, x, vec(x x^T)/sqrt(2)], so phi(q).phi(k) = 1 + q.k + (q.k)^2/2,
  the Taylor expansion of exp(q.k) (a softmax-like kernel that keeps ranking sharp); q and k are
  projected to a small feature_dim (16) so the state, (1 + d' + d'^2) x head_dim per head, stays
  small. The state size is the recall-memory knob.
- sliding-window softmax attention over the last `window` tokens (exact local recall, bounded cache).

Layers alternate: every `swa_every`-th block is a sliding-window attention block, the rest Taylor
linear attention (the shared machinery of `bestiary.layers.linear_attention`, with normaliser).

Simplified: no BaseConv (gated short convolution) layers, which the paper adds for local mixing;
the sliding-window layers keep a growing KV cache (masked to the window) rather than a ring buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache, taylor_features
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50277
    d_model: int = 1024
    n_layers: int = 27
    n_heads: int = 16
    d_ff: int = 2048
    mlp: str = "swiglu"
    feature_dim: int = option(16, min=1)  # q, k width per head before the Taylor map
    window: int = option(64, min=1)  # sliding-window size of the softmax layers
    swa_every: int = option(3, min=1)  # every swa_every-th block is sliding-window attention
    rope_theta: float = 10000.0
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class TaylorLinearAttention(nn.Module):
    """(B, T, D) -> (B, T, D): causal linear attention with Based's Taylor feature map."""

    def __init__(
        self, d_model: int, n_heads: int, feature_dim: int = 16, mode: str = "chunkwise", chunk_size: int = 64
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.feature_dim = feature_dim
        self.mode, self.chunk_size = mode, chunk_size
        self.q_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.k_proj = nn.Linear(d_model, n_heads * feature_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """(B, H, 1 + d' + d'^2, head_dim + 1): the state and the normaliser."""
        return RecurrentState(self, batch, ("state",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        scale = self.feature_dim**-0.25  # the kernel approximates exp(q.k / sqrt(d'))
        q = self.q_proj(x).view(B, T, self.n_heads, self.feature_dim).transpose(1, 2) * scale  # (B, H, T, d')
        k = self.k_proj(x).view(B, T, self.n_heads, self.feature_dim).transpose(1, 2) * scale
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        q, k = taylor_features(q), taylor_features(k)  # (B, H, T, 1 + d' + d'^2)
        out = attend_with_cache(
            self, q, k, v, None, cache, mode=self.mode, chunk_size=self.chunk_size, normalize=True
        )
        if cache is not None:
            cache.length += T
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))


@register(
    "based",
    family="attention",
    config=Config,
    summary="Taylor-feature linear attention layers with small sliding-window softmax attention layers.",
    paper="Simple linear attention language models balance the recall-throughput tradeoff",
    year=2024,
    arxiv="2402.18668",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=16,
        n_layers=2,
        n_heads=2,
        d_ff=32,
        feature_dim=4,
        window=4,
        swa_every=2,
        chunk_size=4,
    ),
    outputs="logits (B, T, vocab_size)",
)
class Based(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)

        def mixer(i: int) -> nn.Module:
            if (i + 1) % c.swa_every == 0:
                return MultiHeadAttention(
                    c.d_model, c.n_heads, bias=False, causal=True, window=c.window, rope=rope
                )
            return TaylorLinearAttention(c.d_model, c.n_heads, c.feature_dim, c.mode, c.chunk_size)

        super().__init__(c, prenorm_blocks(c, mixer, mlp=c.mlp, norm=c.norm))
