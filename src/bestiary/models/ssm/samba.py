"""Samba: Mamba layers alternating with sliding-window attention, each followed by an MLP.

Paper: "Samba: Simple Hybrid State Space Models for Efficient Unlimited Context Language Modeling"
(Ren, Liu, Lu, Shen, Liang & Chen, 2024, arXiv:2406.07522).

Samba repeats one unit of four pre-norm residual sublayers:

    Mamba -> MLP -> sliding-window attention (SWA) -> MLP

Mamba compresses the whole past into its recurrent state (it is good at remembering that something
happened, poor at recalling it exactly); the sliding window attends precisely, but only to the last
`sliding_window` tokens (2048 in the paper). Together they need no global attention at all: every
layer has a bounded decoding state, so the model runs on text of any length at a constant cost per
token, and the paper shows it extrapolates far beyond its training length. The MLPs are SwiGLU, the
attention has RoPE and grouped-query heads.

Here the unit is two `Block`s, [Mamba + MLP] and [SWA + MLP], so layer i is Mamba for even i and
sliding-window attention for odd i (n_layers counts blocks, i.e. mixers).
Simplified: plain Mamba-1 mixers (the paper's), no special initialisation of the output projections.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.mamba import SCANS, MambaMixer
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4  # blocks: Mamba at even i, sliding-window attention at odd i
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 512  # SwiGLU after every mixer
    sliding_window: int = option(2048, min=1)  # how far back each SWA layer reads
    rope_theta: float = 10000.0
    d_state: int = 16  # N of the Mamba layers
    d_conv: int = option(4, min=2)
    expand: int = option(2, min=1)
    dt_rank: int | None = option(None, min=1)
    scan: str = option("sequential", choices=SCANS)
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def samba_blocks(c: Config) -> list[Block]:
    rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)

    def mixer(i: int) -> nn.Module:
        if i % 2 == 0:
            return MambaMixer(
                c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, dt_rank=c.dt_rank, scan=c.scan
            )
        return MultiHeadAttention(
            c.d_model,
            c.n_heads,
            n_kv_heads=c.n_kv_heads,
            bias=False,
            causal=True,
            window=c.sliding_window,
            rope=rope,
        )

    return prenorm_blocks(c, mixer)


@register(
    "samba",
    family="ssm",
    config=Config,
    summary="Samba: Mamba and sliding-window attention layers alternating, each followed by a SwiGLU MLP.",
    paper="Samba: Simple Hybrid State Space Models for Efficient Unlimited Context Language Modeling",
    year=2024,
    arxiv="2406.07522",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64, d_model=16, n_layers=2, n_heads=2, n_kv_heads=1, d_ff=32, sliding_window=4, d_state=4
    ),
    outputs="logits (B, T, vocab_size)",
)
class Samba(CausalLM):
    def __init__(self, config: Config):
        super().__init__(config, samba_blocks(config))
