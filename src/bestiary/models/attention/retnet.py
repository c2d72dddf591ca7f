"""RetNet: multi-scale retention, a linear attention with a fixed decay per head.

Paper: "Retentive Network: A Successor to Transformer for Large Language Models" (Sun, Dong,
Huang, Ma, Xia, Xue, Wang & Wei, 2023, arXiv:2307.08621).

Retention is attention without the softmax, with a causal decay matrix instead:

    Retention(X) = (Q K^T ⊙ D) V,    D_nm = gamma^(n - m) for n >= m, else 0

with Q, K rotated by their positions (xPos's rotation: the scores depend on n - m). The same
outputs come from a recurrence, S_n = gamma S_{n-1} + k_n^T v_n, o_n = q_n S_n (O(1) per token
when decoding), and from a chunkwise form that is parallel inside chunks and recurrent between
them: the paper's three forms, our `mode` option (`bestiary.layers.linear_attention`). Each head
has its own fixed decay gamma_h = 1 - 2^(-5 - h): heads see different time scales ("multi-scale").
Each head's output is group-normed, gated by swish(X W_G), and projected: values and the gate are
`value_factor` = 2 times wider than the keys, as in the paper. The layer, `Retention`, lives in
`bestiary.layers.linear_attention` because RetNet v2's gated retention shares it.

Simplified: rotation uses the half-split RoPE layout (the paper pairs adjacent channels: the same
rotation on a permuted basis) and no xPos length extrapolation scale; the paper's extra
normalisations of QK^T ⊙ D (dividing rows by their sums) are left out: the per-head GroupNorm after
retention undoes any per-row scale anyway.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.linear_attention import MODES, Retention
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50257
    d_model: int = 2048
    n_layers: int = 24
    n_heads: int = 8
    d_ff: int = 4096  # the paper's FFN is 2 x d_model
    mlp: str = "gelu"
    value_factor: int = option(2, min=1)  # values and gate are value_factor x d_model wide
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


@register(
    "retnet",
    family="attention",
    config=Config,
    summary="Multi-scale retention: linear attention with fixed per-head decays, parallel/chunkwise/recurrent.",
    paper="Retentive Network: A Successor to Transformer for Large Language Models",
    year=2023,
    arxiv="2307.08621",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class RetNet(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: Retention(
                c.d_model,
                c.n_heads,
                value_factor=c.value_factor,
                rope_theta=c.rope_theta,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
