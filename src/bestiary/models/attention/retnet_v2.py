"""RetNet v2: gated retention, RetNet's retention with a data-dependent decay.

Paper: "You Only Cache Once: Decoder-Decoder Architectures for Language Models" (Sun, Dong, Zhu,
Huang, Wang, Ma, Zhang, Wang & Wei, 2024, arXiv:2405.05254), whose self-decoder runs "gated
retention", the successor of RetNet's multi-scale retention ("Retentive Network", Sun et al.,
2023, arXiv:2307.08621).

RetNet decays every head's state by a fixed gamma_h, whatever the tokens say. Gated retention
lets the tokens decide, one scalar per head and position:

    gamma_t = sigmoid(x_t W_gamma + b)^(1/tau),   tau = 16
    S_t = gamma_t S_{t-1} + k_t^T v_t,   o_t = q_t S_t
    parallel: (Q K^T ⊙ D) V with D_nm = prod_{i=m+1..n} gamma_i

a data-dependent *scalar* decay (between RetNet's fixed one and GLA's per-channel one), so the
parallel, chunkwise and recurrent forms still hold (`bestiary.layers.linear_attention`). Rotation,
GroupNorm and the swish gate are RetNet's (`Retention(gated=True)`); b starts at RetNet's decays.

Interpretation: the catalog names this "RetNet v2"; we read it as YOCO's gated retention, the
retention its authors moved to. Simplified: only the retention LM, not YOCO's cross-decoder
(one shared KV cache for the upper half), which is a separate idea.
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
    vocab_size: int = 100288
    d_model: int = 3072
    n_layers: int = 26
    n_heads: int = 24
    d_ff: int = 8192
    mlp: str = "swiglu"
    value_factor: int = option(1, min=1)  # YOCO keeps values as wide as keys
    gate_temperature: float = option(16.0, gt=0.0)  # tau
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_embeddings: bool = False
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


@register(
    "retnet_v2",
    family="attention",
    config=Config,
    summary="Gated retention (YOCO): RetNet's retention with a data-dependent scalar decay per head and token.",
    paper="You Only Cache Once: Decoder-Decoder Architectures for Language Models",
    year=2024,
    arxiv="2405.05254",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class RetNetV2(CausalLM):
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
                gated=True,
                gate_temperature=c.gate_temperature,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
