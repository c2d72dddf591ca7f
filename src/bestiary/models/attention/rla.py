"""RLA: Residual Linear Attention, from "Enhancing Linear Attention with Residual Learning".

Paper: "Enhancing Linear Attention with Residual Learning" (Lai, Kang, Lu, Lin & Zhao, 2025,
arXiv:2509.25223), which introduces RLA and RDN together.

Linear attention reads o_t = S_t q_t from a state S_t = S_{t-1} + v_t k_tᵀ. Written as prediction
plus correction, o_t = S_{t-1} q_t + v_t (k_t·q_t): the history predicts, and only the current
token corrects, an expressivity bottleneck. The paper adds an explicit residual-fitting path: an
auxiliary state R_t accumulates the errors r_t = v_t - S_{t-1} k_t the base memory makes on each
new key, and the output reads the history before this token plus the corrected residuals,
o_t = α_t S_{t-1} q_t + R_t q_t (the paper's Eq. for RLA: the current token reaches the output only
through the residual memory). Per-head gates control decay (α) and
how strongly each memory is written (β for the base, γ for the residuals); residuals are clipped
to ±residual_clip for stability. RLA uses gated linear attention for both states; RDN uses the
gated delta rule (S_t = α S_{t-1}(I - β k kᵀ) + β v kᵀ, likewise R with γ and r).

Simplified: the gates are per-head sigmoids of the input and keys/queries are L2-normalised; the
paper's exact gate parameterisation and output normalisation may differ (its kernels were not at
hand). The mixer is shared with the other
variant: `bestiary.layers.attention_variants.ResidualLinearAttention` (delta=False here).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.attention_variants import ResidualLinearAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    residual_clip: float = option(1.0, gt=0.0)  # residuals are clipped to ±residual_clip
    mode: str = option(
        "parallel", choices=("parallel", "recurrent")
    )  # attention-like matrices, or the recurrence
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "rla",
    family="attention",
    config=Config,
    summary="Residual Linear Attention: gated linear attention plus a second state that accumulates its clipped residual errors.",
    paper="Enhancing Linear Attention with Residual Learning",
    year=2025,
    arxiv="2509.25223",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64),
    outputs="logits (B, T, vocab_size)",
)
class RLA(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: ResidualLinearAttention(
                c.d_model, c.n_heads, delta=False, residual_clip=c.residual_clip, mode=c.mode
            ),
        )
        super().__init__(config, blocks)
