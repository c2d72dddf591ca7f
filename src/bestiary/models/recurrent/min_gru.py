"""minGRU: the GRU with its gates freed from the previous state, trained in parallel with a scan.

Paper: "Were RNNs All We Needed?" (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024,
arXiv:2410.01201).

A GRU's gates read h_{t-1}, so step t waits for step t-1 and training is a loop over time. minGRU
computes the update gate and the candidate from x_t alone,

    z_t = sigmoid(W_z x_t),   h~_t = g(W_h x_t),   h_t = (1 - z_t) * h_{t-1} + z_t * h~_t,

which is the linear recurrence h_t = a_t h_{t-1} + b_t (`bestiary.layers.scan`): every h_t is
computed at once by a parallel scan. The paper keeps h positive (g(x) = x + 0.5 or sigmoid(x)) so
the scan runs in log space (logcumsumexp), where nothing under- or overflows. The `mode` option
picks the parallel log-space scan or the step-by-step loop (same outputs); decoding one token at a
time always uses the loop, with O(1) state.

The language model is the paper's: residual blocks of [RMSNorm -> minGRU] and [RMSNorm -> MLP],
with an optional causal depthwise convolution in front of the recurrence (`conv`). Simplified: the
convolution sits inside the mixer branch (the paper's reference code adds it as its own residual
branch, depthwise then pointwise); the MLP is any `mlp` kind (GELU by default, as there).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.rnn import MIN_RNN_MODES, MinGRUMixer
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 512
    n_layers: int = 6
    d_ff: int = 2048
    mlp: str = "gelu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    expansion: float = option(1.5, gt=0.0)  # state width / d_model (the paper's expansion factor)
    mode: str = option("parallel", choices=MIN_RNN_MODES)  # training form; steps use the recurrence
    conv: bool = False  # a causal depthwise conv before the recurrence
    kernel_size: int = 3  # of that conv
    dropout: float = 0.0
    tie_embeddings: bool = False


@register(
    "min_gru",
    family="recurrent",
    config=Config,
    summary="minGRU LM: a GRU whose gates read only x_t, trained with a parallel log-space scan.",
    paper="Were RNNs All We Needed?",
    year=2024,
    arxiv="2410.01201",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=16, n_layers=2, d_ff=32, conv=True),
    outputs="logits (B, T, vocab_size)",
)
class MinGRU(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: MinGRUMixer(c.d_model, c.expansion, c.mode, c.kernel_size if c.conv else 0),
            mlp=c.mlp,
            norm=c.norm,
            mlp_bias=True,
            dropout=c.dropout,
        )
        super().__init__(config, blocks)
