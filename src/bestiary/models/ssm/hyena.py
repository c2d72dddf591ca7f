"""Hyena: a language model whose token mixer is the Hyena operator (gated implicit long convolutions).

Paper: "Hyena Hierarchy: Towards Larger Convolutional Language Models" (Poli, Massaroli, Nguyen, Fu,
Dao, Baccus, Bengio, Ermon & Re, 2023, arXiv:2302.10866).

Attention costs O(T^2). Hyena builds a data-controlled operator from two subquadratic pieces:
elementwise gates (projections of the input) and long causal convolutions computed by FFT in
O(T log T). An order-N operator projects the input into N + 1 streams (each through a short causal
depthwise conv), then alternates: multiply by a gate, convolve with a long filter. The filters are
*implicit*: a small FFN with sine activations maps positional features of t to the tap h_t, times
an exponential decay window, so a filter as long as the sequence costs a fixed number of
parameters. The blocks are GPT's, with Hyena in place of attention. The operator and its filters
live in `bestiary.layers.hyena`.

Decoding: the filters are as long as the sequence, so Hyena has no fixed-size state. The cache
holds the inputs of every long convolution seen so far (it grows by one position per token, like
a KV cache, up to max_seq_len) and each new token re-runs the convolution over that history.
Simplified: no filter normalisation, a single filter FFN per long convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.hyena import HyenaOperator, ImplicitFilter
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_257
    d_model: int = 768
    n_layers: int = 12
    d_ff: int = 3072
    mlp: str = "gelu"
    max_seq_len: int = 2048  # the implicit filters are defined up to this length
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    order: int = option(2, min=2)  # N: N + 1 projections, N - 1 long convolutions
    kernel_size: int = 3  # the short depthwise conv on the projections
    d_filter: int = option(64, min=1)  # the width of the filter FFN
    pos_dim: int = option(5, min=3)  # positional features of the filter FFN: t, then cos/sin pairs


@register(
    "hyena",
    family="ssm",
    config=Config,
    summary="Hyena: order-N recurrence of gates and implicit long FFT convolutions in place of attention.",
    paper="Hyena Hierarchy: Towards Larger Convolutional Language Models",
    year=2023,
    arxiv="2302.10866",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_ff=32, max_seq_len=64, d_filter=8),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(
            lambda c: c.pos_dim % 2 == 1,
            "pos_dim={pos_dim} must be odd (t, then cos/sin pairs)",
            ("pos_dim",),
        ),
    ),
)
class Hyena(CausalLM):
    def __init__(self, config: Config):
        c = config

        def operator() -> HyenaOperator:
            filters = [
                ImplicitFilter(c.d_model, c.max_seq_len, c.d_filter, c.pos_dim) for _ in range(c.order - 1)
            ]
            return HyenaOperator(c.d_model, filters, c.kernel_size, c.dropout)

        blocks = prenorm_blocks(c, lambda _: operator(), mlp=c.mlp, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
