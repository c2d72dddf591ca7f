"""Perceiver IO: read any input into a small latent array by cross-attention, think in the latents,
and write any output by cross-attending output queries to them.

Paper: "Perceiver IO: A General Architecture for Structured Inputs & Outputs" (Jaegle, Borgeaud,
Alayrac et al., DeepMind, 2021, arXiv:2107.14795).

Self-attention over T inputs costs O(T²). The Perceiver keeps a fixed array of N latents
(N = `num_latents`, N << T, a learned parameter) and touches the inputs only through
cross-attention, latents -> inputs, which costs O(N T). The deep part, `n_layers` self-attention
layers, runs on the latents: O(N²) each, independent of T. Perceiver IO adds a decoder: one learned
query per output position cross-attends to the latents (O(M N) for M outputs), so the output can
have any size and structure.

This is the paper's language model (masked language modelling on UTF-8 bytes, transformers'
`PerceiverForMaskedLM`, deepmind/language-perceiver): byte embeddings + learned positions are the
inputs; the decoder's queries are learned position embeddings; logits = decoder output · the byte
embedding matrixᵀ + a bias. Every attention is pre-LayerNorm with a residual to its queries
(except the decoder's), followed by a pre-LayerNorm GELU MLP with a residual. Bidirectional.

Simplified: the latent self-attention stack is applied once (transformers' `num_blocks` > 1
re-applies the same layers with shared weights; the language model uses 1); MLP widening factors
are 1, as in the language model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import make_mlp
from bestiary.layers.checks import check_shape, check_tokens
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 262  # 256 bytes + 6 special tokens
    d_model: int = 768  # width of the inputs (byte embeddings) and of the decoder's queries
    d_latents: int = option(1280, min=1)  # width of the latent array
    num_latents: int = option(256, min=1)  # N
    n_layers: int = 26  # latent self-attention layers
    n_heads: int = 8  # heads of the latent self-attention
    cross_heads: int = option(8, min=1)  # heads of the encoder's and the decoder's cross-attention
    decoder_qk_channels: int = option(256, min=1)  # query/key width of the decoder cross-attention (8 x 32)
    max_seq_len: int = 2048  # input positions, and decoder queries
    norm_eps: float = 1e-5


class PerceiverAttention(nn.Module):
    """Pre-LayerNorm multi-head attention from queries x (B, M, q_dim) to a context (B, S, kv_dim)
    (cross) or to x itself (self), with widths chosen freely: qk_channels for the query-key
    products, v_channels for the values; the output is projected to q_dim."""

    def __init__(
        self,
        q_dim: int,
        kv_dim: int,
        *,
        n_heads: int,
        qk_channels: int,
        v_channels: int,
        cross: bool,
        query_residual: bool = True,
        norm_eps: float = 1e-5,
    ):
        super().__init__()
        for name, width in (("qk_channels", qk_channels), ("v_channels", v_channels)):
            if width % n_heads:
                raise ValueError(f"{name}={width} must be divisible by n_heads={n_heads}")
        self.n_heads, self.cross, self.query_residual = n_heads, cross, query_residual
        self.q_norm = nn.LayerNorm(q_dim, eps=norm_eps)
        self.kv_norm = nn.LayerNorm(kv_dim, eps=norm_eps) if cross else None
        self.q_proj = nn.Linear(q_dim, qk_channels)
        self.k_proj = nn.Linear(kv_dim, qk_channels)
        self.v_proj = nn.Linear(kv_dim, v_channels)
        self.out_proj = nn.Linear(v_channels, q_dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """mask: (B, S) bool, True for the context positions that may be attended (padding False)."""
        h = self.q_norm(x)
        kv = self.kv_norm(context) if self.cross else h
        B, M, _ = x.shape
        S = kv.shape[1]
        q = self.q_proj(h).view(B, M, self.n_heads, -1).transpose(1, 2)  # (B, heads, M, qk / heads)
        k = self.k_proj(kv).view(B, S, self.n_heads, -1).transpose(1, 2)  # (B, heads, S, qk / heads)
        v = self.v_proj(kv).view(B, S, self.n_heads, -1).transpose(1, 2)  # (B, heads, S, v / heads)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B, 1, 1, S)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # (B, heads, M, v / heads)
        out = self.out_proj(out.transpose(1, 2).reshape(B, M, -1))  # (B, M, q_dim)
        return out + x if self.query_residual else out


class PerceiverLayer(nn.Module):
    """Attention (with its residual) then a pre-LayerNorm GELU MLP with a residual."""

    def __init__(self, q_dim: int, attention: PerceiverAttention, norm_eps: float = 1e-5):
        super().__init__()
        self.attention = attention
        self.mlp_norm = nn.LayerNorm(q_dim, eps=norm_eps)
        self.mlp = make_mlp("gelu", q_dim, q_dim, bias=True)  # widening factor 1

    def forward(self, x, context=None, mask=None):
        x = self.attention(x, context, mask)
        return x + self.mlp(self.mlp_norm(x))


@register(
    "perceiver",
    family="attention",
    config=Config,
    summary="Perceiver IO: cross-attend inputs into a latent array, self-attend latents, decode with output queries.",
    paper="Perceiver IO: A General Architecture for Structured Inputs & Outputs",
    year=2021,
    arxiv="2107.14795",
    input_kind="tokens",
    causal=False,
    tiny=dict(
        vocab_size=64,
        d_model=16,
        d_latents=24,
        num_latents=6,
        n_layers=2,
        n_heads=4,
        cross_heads=2,
        decoder_qk_channels=8,
        max_seq_len=32,
    ),
    presets={
        "perceiver_io": Preset(
            {},
            params=269_319_430,
            source="transformers PerceiverForMaskedLM(PerceiverConfig()) = deepmind/language-perceiver, on meta",
        )
    },
    outputs="logits (B, T, vocab_size) for masked-byte prediction",
)
class PerceiverIO(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed = nn.Embedding(c.max_seq_len, c.d_model)
        self.latents = nn.Parameter(torch.randn(c.num_latents, c.d_latents) * 0.02)
        self.encoder = PerceiverLayer(
            c.d_latents,
            PerceiverAttention(
                c.d_latents,
                c.d_model,
                n_heads=c.cross_heads,
                qk_channels=c.d_model,  # as wide as the inputs (transformers: cross_attention_shape "kv")
                v_channels=c.d_model,
                cross=True,
                norm_eps=c.norm_eps,
            ),
            c.norm_eps,
        )
        self.latent_layers = nn.ModuleList(
            PerceiverLayer(
                c.d_latents,
                PerceiverAttention(
                    c.d_latents,
                    c.d_latents,
                    n_heads=c.n_heads,
                    qk_channels=c.d_latents,
                    v_channels=c.d_latents,
                    cross=False,
                    norm_eps=c.norm_eps,
                ),
                c.norm_eps,
            )
            for _ in range(c.n_layers)
        )
        self.output_queries = nn.Parameter(torch.randn(c.max_seq_len, c.d_model) * 0.02)  # one per position
        self.decoder = PerceiverLayer(
            c.d_model,
            PerceiverAttention(
                c.d_model,
                c.d_latents,
                n_heads=c.cross_heads,
                qk_channels=c.decoder_qk_channels,
                v_channels=c.d_model,
                cross=True,
                query_residual=False,  # the queries are positions, the outputs bytes: no residual
                norm_eps=c.norm_eps,
            ),
            c.norm_eps,
        )
        self.output_bias = nn.Parameter(torch.zeros(c.vocab_size))

    def encode(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, T) -> latents (B, num_latents, d_latents)."""
        c = self.config
        check_tokens(tokens, c.vocab_size)
        B, T = tokens.shape
        if c.max_seq_len < T:
            raise ValueError(f"{T} tokens exceed max_seq_len={c.max_seq_len}")
        if padding_mask is not None:
            check_shape(padding_mask, "B T", name="padding_mask", B=B, T=T)
            if padding_mask.dtype != torch.bool:
                raise TypeError(f"padding_mask must be bool (True = a real token), got {padding_mask.dtype}")
        inputs = self.tok_embed(tokens) + self.pos_embed(
            torch.arange(T, device=tokens.device)
        )  # (B, T, d_model)
        z = self.encoder(self.latents.expand(B, -1, -1), inputs, padding_mask)  # (B, N, d_latents)
        for layer in self.latent_layers:
            z = layer(z)
        return z

    def forward_features(
        self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, T) -> decoder outputs (B, T, d_model): query t reads the latents for position t."""
        z = self.encode(tokens, padding_mask)
        queries = self.output_queries[: tokens.shape[1]].expand(tokens.shape[0], -1, -1)  # (B, T, d_model)
        return self.decoder(queries, z)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> logits (B, T, vocab_size): against the byte embeddings (tied)."""
        return features @ self.tok_embed.weight.T + self.output_bias

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(tokens, padding_mask))
