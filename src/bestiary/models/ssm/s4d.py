"""S4D: the diagonal structured state space model, as a language model.

Paper: "On the Parameterization and Initialization of Diagonal State Space Models" (Gu, Gupta,
Goel & Re, 2022, arXiv:2206.11893).

S4 needed a diagonal-plus-low-rank A and a Cauchy kernel to be both expressive and fast. S4D keeps
only the diagonal: A is N/2 complex numbers per channel (their conjugates implied, so the system is
real), and the convolution kernel K_l = 2 Re(sum_n C_n B_bar_n exp(dt A_n)^l) is a Vandermonde
product, a few lines of code. The paper's point is the initialisation: S4D-Lin
(A_n = -1/2 + i pi n) and S4D-Inv (close to HiPPO-LegS's eigenvalues) make the diagonal model as
good as S4. Training runs the layer as a causal FFT convolution (pad to 2T); decoding runs the same
system as a recurrence with a fixed-size complex state (this model's cache).

The block is the S4 repository's: SSM (+ D skip) -> GELU -> Linear to 2D -> GLU, in a pre-norm
residual block followed by an MLP (as in S4's language-model configuration).

Simplified: B is fixed to 1 and folded into C (S4D's minimal implementation); no bidirectional
option; dt is per channel (not per state).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.ssm_kernels import DiagonalSSM, SSMGLUMixer
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_277
    d_model: int = 768
    n_layers: int = 12
    d_state: int = 64  # N: the real state size per channel (N/2 complex conjugate pairs)
    d_ff: int = 3072
    mlp: str = "gelu"
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    init: str = option("lin", choices=("lin", "inv"))  # S4D-Lin or S4D-Inv
    mode: str = option("convolution", choices=("convolution", "recurrent"))
    dt_min: float = option(1e-3, gt=0.0)
    dt_max: float = option(1e-1, gt=0.0)


class S4DMixer(SSMGLUMixer):
    """x (B, T, D) -> SSM along time, per channel -> GELU -> GLU across channels -> (B, T, D).

    cache: a RecurrentState holding "h" (B, D, N/2) complex: the SSM state after the positions read."""

    def __init__(self, config: Config):
        c = config
        ssm = DiagonalSSM(c.d_model, c.d_state, init=c.init, dt_min=c.dt_min, dt_max=c.dt_max)
        super().__init__(c.d_model, ssm, c.mode, c.dropout)


@register(
    "s4d",
    family="ssm",
    config=Config,
    summary="S4D: diagonal complex SSM (S4D-Lin/Inv init, ZOH), FFT convolution to train, recurrence to decode.",
    paper="On the Parameterization and Initialization of Diagonal State Space Models",
    year=2022,
    arxiv="2206.11893",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=8, d_ff=32),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(
            lambda c: c.dt_min <= c.dt_max, "dt_min={dt_min} must be <= dt_max={dt_max}", ("dt_min", "dt_max")
        ),
        Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (conjugate pairs)", ("d_state",)),
    ),
)
class S4D(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: S4DMixer(c), mlp=c.mlp, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
