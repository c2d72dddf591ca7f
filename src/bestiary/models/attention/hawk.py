"""Hawk: a language model of RG-LRU recurrent blocks only, no attention at all.

Paper: "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language
Models" (De et al., 2024, arXiv:2402.19427). Hawk is the paper's pure-recurrence model: every
residual block is the recurrent block (`bestiary.layers.rg_lru`: a gelu gate branch times a short
conv followed by the RG-LRU), then a GeGLU MLP. The paper reports it matching Mamba at equal
training tokens; its sibling Griffin (`griffin`) adds local attention every third block and does
better on recall, which a fixed-size state alone cannot do exactly.

Decoding state: per block, the conv's last kernel_size - 1 inputs and the RG-LRU's h, whatever the
length of the text. Same Gemma conventions as Griffin (sqrt(d_model) embedding scale, soft-capped
logits), so a RecurrentGemma configuration with only recurrent blocks maps onto it weight for weight.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.rg_lru import SCANS, RecurrentBlock
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4  # blocks of the RG-LRU's block-diagonal gates
    d_ff: int = 384  # hidden width of each branch of the GeGLU MLP
    lru_width: int | None = option(None, min=1)  # the recurrent branch's width (None: d_model)
    kernel_size: int = 4  # the short causal conv before the RG-LRU
    norm_eps: float = 1e-6
    embed_scale: bool = True
    logit_soft_cap: float | None = option(30.0, gt=0.0)
    tie_embeddings: bool = True
    scan: str = option("hillis_steele", choices=tuple(SCANS))  # how the RG-LRU runs a sequence


@register(
    "hawk",
    family="attention",
    config=Config,
    summary="Hawk: a pure RG-LRU recurrent language model (Griffin without attention).",
    paper="Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models",
    year=2024,
    arxiv="2402.19427",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=48),
    outputs="logits (B, T, vocab_size)",
)
class Hawk(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: RecurrentBlock(
                c.d_model,
                lru_width=c.lru_width or c.d_model,
                n_heads=c.n_heads,
                conv_width=c.kernel_size,
                scan=c.scan,
            ),
            mlp="geglu",
            mlp_bias=True,
        )
        super().__init__(config, blocks)
