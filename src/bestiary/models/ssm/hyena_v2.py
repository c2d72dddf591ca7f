"""Hyena v2: StripedHyena 2's multi-hybrid convolutions (short explicit, medium regularised, long
implicit filters) striped with attention.

Paper: "Systems and Algorithms for Convolutional Multi-Hybrid Language Models at Scale" (Ku, Nguyen,
Poli et al., 2025, arXiv:2503.01868), the architecture of Evo 2; it builds on "Hyena Hierarchy"
(Poli et al., 2023, arXiv:2302.10866).

StripedHyena 2 observes that one kind of long convolution is not the best at every job. It mixes
three kinds of order-2 Hyena operators, y = q ⊙ (h * (k ⊙ v)), that differ only in the filter h:

  Hyena-SE  short explicit filters (~7 free taps): local, multi-token recall; fast on hardware
  Hyena-MR  medium regularised filters (~128 free taps times a learned exponential decay)
  Hyena-LI  long implicit filters, here in modal form h_t = sum_m R_m lambda_m^t (a diagonal
            recurrence: O(1) state when decoding)

plus a few attention layers for exact long-range recall. `pattern` gives the cycle of layer kinds
("se-mr-li-a": SE, MR, LI, attention, SE, MR, ...). Every Hyena layer decodes with a fixed-size
cache (SE/MR: their last inputs; LI: the modal state); attention keeps its KV cache.

Simplified: no two-stage blocked kernels (a systems contribution of the paper), the LI filter's poles
are real and shared in shape across channels, standard RoPE attention.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bestiary.layers.block import Block, make_mlp, transformer_block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.hyena import ExplicitFilter, HyenaOperator, ModalFilter
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import option
from bestiary.registry import register

PATTERNS = ("se-mr-li-a", "se-mr-li", "se-li", "mr-li", "li")


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 512  # Evo 2 reads DNA bytes
    d_model: int = 1024
    n_layers: int = 16
    n_heads: int = 16  # of the attention layers
    d_ff: int = 2752
    mlp: str = "swiglu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    dropout: float = 0.0
    tie_embeddings: bool = True
    pattern: str = option("se-mr-li-a", choices=PATTERNS)  # the cycle of layer kinds
    kernel_size: int = 3  # the short conv on q, k, v
    se_len: int = option(7, min=1)  # Hyena-SE filter taps
    mr_len: int = option(128, min=1)  # Hyena-MR filter taps
    d_state: int = 16  # Hyena-LI modes (poles) per channel


def _layer(kind: str, c: Config, rope: RotaryEmbedding) -> nn.Module:
    if kind == "a":
        return transformer_block(
            c.d_model,
            c.n_heads,
            c.d_ff,
            rope=rope,
            norm=c.norm,
            norm_eps=c.norm_eps,
            mlp=c.mlp,
            dropout=c.dropout,
        )
    long_filter = {
        "se": lambda: ExplicitFilter(c.d_model, c.se_len, decay=False),
        "mr": lambda: ExplicitFilter(c.d_model, c.mr_len, decay=True),
        "li": lambda: ModalFilter(c.d_model, c.d_state),
    }[kind]()
    operator = HyenaOperator(c.d_model, [long_filter], c.kernel_size, c.dropout)  # order 2
    mlp = make_mlp(c.mlp, c.d_model, c.d_ff, dropout=c.dropout)
    return Block(
        c.d_model, operator, mlp, norm=c.norm, norm_eps=c.norm_eps, norm_bias=False, dropout=c.dropout
    )


@register(
    "hyena_v2",
    family="ssm",
    config=Config,
    summary="StripedHyena 2: multi-hybrid Hyena layers (short explicit, medium regularised, long modal filters) with attention.",
    paper="Systems and Algorithms for Convolutional Multi-Hybrid Language Models at Scale",
    year=2025,
    arxiv="2503.01868",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=4, n_heads=2, d_ff=32, se_len=3, mr_len=8, d_state=4),
    outputs="logits (B, T, vocab_size)",
)
class HyenaV2(CausalLM):
    def __init__(self, config: Config):
        c = config
        kinds = c.pattern.split("-")
        self.layer_kinds = [kinds[i % len(kinds)] for i in range(c.n_layers)]
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        super().__init__(config, [_layer(kind, c, rope) for kind in self.layer_kinds])
