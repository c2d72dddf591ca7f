"""Hymba: attention heads and SSM heads side by side in every layer, plus learnable meta tokens.

Paper: "Hymba: A Hybrid-head Architecture for Small Language Models" (Dong, Fu, Diao et al., NVIDIA,
2024, arXiv:2411.13676).

Jamba and Samba stack attention layers and SSM layers one after the other. Hymba puts them in the
SAME layer: the normalised input goes to attention heads and to Mamba (SSM) heads in parallel, and
their outputs are normalised and averaged,

    y = (beta_1 * RMSNorm(attention(x)) + beta_2 * RMSNorm(ssm(x))) / 2      beta: learned per channel

so every layer has both high-resolution recall (attention) and a compressed summary of the whole
past (the SSM), and the norms keep either from drowning the other. Two more ideas:

- Meta tokens: `n_meta_tokens` learned vectors are prepended to every sequence. They are the first
  positions everything can attend to, so they absorb the attention that would otherwise pile on the
  first real token ("attention sinks") and hold knowledge shared by all prompts. Their outputs are
  dropped: features and logits cover the real tokens only.
- Since the SSM heads already carry the global context, most layers use sliding-window attention
  (which still always sees the meta tokens); only the first, middle and last layers attend globally.

Simplified: each branch keeps its own output projection and the norms act after it (the paper
normalises in head space before one shared projection); no cross-layer KV-cache sharing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_tokens
from bestiary.layers.kv_cache import Cache
from bestiary.layers.mamba import SCANS, MambaMixer
from bestiary.layers.norms import RMSNorm
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.state import NonFiniteStateError
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 512
    n_meta_tokens: int = option(16, min=0)  # learned tokens prepended to every sequence (128 in the paper)
    sliding_window: int = option(1024, min=1)  # attention span of the local layers (meta tokens always seen)
    rope_theta: float = 10000.0
    d_state: int = 16  # N of the SSM heads
    d_conv: int = option(4, min=2)
    expand: int = option(2, min=1)
    dt_rank: int | None = option(None, min=1)
    scan: str = option("sequential", choices=SCANS)
    norm_eps: float = 1e-6
    tie_embeddings: bool = True


def global_attention_layers(n_layers: int) -> set[int]:
    """The layers with full attention: the first, the middle and the last."""
    return {0, n_layers // 2, n_layers - 1}


class HybridHeadMixer(nn.Module):
    """Attention heads and Mamba heads on the same input, normalised and averaged (the paper's eq. 1).

    window: None for global attention, else the sliding window, widened to always include the first
    n_meta positions (the meta tokens). Cache: a Cache of [KVCache, Mamba's RecurrentState]."""

    def __init__(
        self,
        d_model: int,
        *,
        n_heads: int,
        n_kv_heads: int | None,
        window: int | None,
        n_meta: int,
        rope: RotaryEmbedding,
        norm_eps: float,
        **mamba_options: object,
    ):
        super().__init__()
        self.window, self.n_meta = window, n_meta
        self.attention = MultiHeadAttention(
            d_model,
            n_heads,
            n_kv_heads=n_kv_heads,
            bias=False,
            causal=True,
            rope=rope,
            score_bias=None if window is None else self.meta_window_bias,
        )
        self.ssm = MambaMixer(d_model, **mamba_options)
        self.attn_norm = RMSNorm(d_model, norm_eps)  # its weight is beta_1
        self.ssm_norm = RMSNorm(d_model, norm_eps)  # beta_2

    def meta_window_bias(self, t_query: int, t_key: int, start: int) -> torch.Tensor:
        """(1, 1, t_query, t_key): 0 where the key is a meta token or within the window, -inf elsewhere
        (the attention's causal mask hides the future)."""
        device = self.attn_norm.weight.device
        query_pos = torch.arange(start, start + t_query, device=device)[:, None]  # absolute positions
        key_pos = torch.arange(t_key, device=device)[None, :]
        visible = (key_pos < self.n_meta) | (query_pos - key_pos < self.window)  # (t_query, t_key)
        bias = torch.zeros(t_query, t_key, device=device).masked_fill(~visible, float("-inf"))
        return bias[None, None]

    def init_cache(self, batch: int) -> Cache:
        return Cache([self.attention.init_cache(batch), self.ssm.init_cache(batch)])

    def forward(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        if cache is None:
            attended, summarised = self.attention(x), self.ssm(x)
        else:
            attended, summarised = self.attention(x, cache=cache[0]), self.ssm(x, cache=cache[1])
        return (self.attn_norm(attended) + self.ssm_norm(summarised)) / 2  # (B, T, d_model)


@register(
    "hymba",
    family="ssm",
    config=Config,
    summary="Hymba: attention and Mamba heads in parallel in every layer, normalised and averaged; "
    "learned meta tokens prepended; sliding-window attention in most layers.",
    paper="Hymba: A Hybrid-head Architecture for Small Language Models",
    year=2024,
    arxiv="2411.13676",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=32, n_meta_tokens=2, d_state=4
    ),
    outputs="logits (B, T, vocab_size)",
)
class Hymba(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        full = global_attention_layers(c.n_layers)
        blocks = prenorm_blocks(
            c,
            lambda i: HybridHeadMixer(
                c.d_model,
                n_heads=c.n_heads,
                n_kv_heads=c.n_kv_heads,
                window=None if i in full else c.sliding_window,
                n_meta=c.n_meta_tokens,
                rope=rope,
                norm_eps=c.norm_eps,
                d_state=c.d_state,
                d_conv=c.d_conv,
                expand=c.expand,
                dt_rank=c.dt_rank,
                scan=c.scan,
            ),
        )
        super().__init__(config, blocks)
        self.meta_tokens = nn.Parameter(0.02 * torch.randn(c.n_meta_tokens, c.d_model))  # (M, d_model)

    def forward_features(
        self, tokens: torch.Tensor, *, cache: Cache | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, T) -> final-normed hidden states of the real tokens (B, T, d_model). The meta
        tokens go first, once: on a fresh cache (or without one) they are prepended to `tokens`."""
        check_tokens(tokens, self.config.vocab_size)
        if padding_mask is not None:
            raise ValueError("Hymba reads tokens left to right with a running state and cannot skip padding")
        x = self.tok_embed(tokens)  # (B, T, d_model)
        n_meta = 0
        if cache is None or cache.length == 0:
            n_meta = self.meta_tokens.shape[0]
            x = torch.cat([self.meta_tokens.expand(x.shape[0], -1, -1), x], dim=1)  # (B, M + T, D)
        for i, block in enumerate(self.blocks):
            try:
                x = block(x) if cache is None else block(x, cache=cache[i])
            except NonFiniteStateError as error:
                raise NonFiniteStateError(f"blocks.{i}: {error}") from None
        if cache is not None:
            cache.advance(x.shape[1])  # positions, meta tokens included
        return self.norm(x[:, n_meta:])
