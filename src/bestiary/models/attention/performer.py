"""Performer: softmax attention approximated with positive orthogonal random features (FAVOR+).

Paper: "Rethinking Attention with Performers" (Choromanski, Likhosherstov, Dohan, Song, Gane,
Sarlos, Hawkins, Davis, Mohiuddin, Kaiser, Belanger, Colwell & Weller, 2020, arXiv:2009.14794).

The softmax kernel exp(q . k) is an expectation over random Gaussian vectors w:

    exp(q . k) = E_w[ exp(w.q - |q|^2/2) exp(w.k - |k|^2/2) ],    w ~ N(0, I)

so with m draws, phi(x) = exp(W x - |x|^2/2) / sqrt(m) gives phi(q) . phi(k) ≈ exp(q . k), an
unbiased estimate made of positive numbers (the normaliser of attention never comes near zero,
unlike sin/cos features). Drawing the rows of W orthogonal to each other lowers the variance.
Then attention is linear attention with these features: causal prefix sums, a (m x d) state per
head, O(T m d) work (`bestiary.layers.linear_attention`). More features, better approximation.

Simplified: the features are drawn once at construction (a buffer; `redraw()` draws new ones,
which the paper does periodically during training); no stabiliser for keys (the query one cancels
in the normaliser).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import (
    MODES,
    attend_with_cache,
    favor_features,
    orthogonal_random_features,
)
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    mlp: str = "gelu"
    n_features: int = option(256, min=1)  # m random features per head
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class FavorAttention(nn.Module):
    """(B, T, D) -> (B, T, D): causal FAVOR+ attention, phi(q) S_t / phi(q) z_t."""

    def __init__(
        self, d_model: int, n_heads: int, n_features: int, mode: str = "chunkwise", chunk_size: int = 64
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.n_features = n_features
        self.mode, self.chunk_size = mode, chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)
        self.register_buffer("projection", orthogonal_random_features(n_features, self.head_dim))  # (m, Dh)

    @torch.no_grad()
    def redraw(self, generator: torch.Generator | None = None) -> None:
        """Draw new random features (the paper redraws them every so often while training)."""
        fresh = orthogonal_random_features(self.n_features, self.head_dim, generator=generator)
        self.projection.copy_(fresh)

    def init_cache(self, batch: int) -> RecurrentState:
        """sum phi(k) v^T and sum phi(k) together: (B, H, m, head_dim + 1)."""
        return RecurrentState(self, batch, ("state",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        scale = self.head_dim**-0.25  # q.k / sqrt(d) = (q d^-1/4) . (k d^-1/4)
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2) * scale  # (B, H, T, Dh)
        k = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2) * scale
        v = self.v_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        projection = self.projection.to(x.dtype)
        q = favor_features(q, projection, is_query=True)  # (B, H, T, m)
        k = favor_features(k, projection)
        out = attend_with_cache(
            self, q, k, v, None, cache, mode=self.mode, chunk_size=self.chunk_size, normalize=True
        )  # (B, H, T, Dh)
        if cache is not None:
            cache.length += T
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))


@register(
    "performer",
    family="attention",
    config=Config,
    summary="FAVOR+: softmax attention approximated by positive orthogonal random features, linear in T.",
    paper="Rethinking Attention with Performers",
    year=2020,
    arxiv="2009.14794",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, n_features=16, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class Performer(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: FavorAttention(c.d_model, c.n_heads, c.n_features, c.mode, c.chunk_size),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
