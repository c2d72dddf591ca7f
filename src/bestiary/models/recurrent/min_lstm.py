"""minLSTM: the LSTM with its gates freed from the previous state, trained in parallel with a scan.

Paper: "Were RNNs All We Needed?" (Feng, Tung, Ahmed, Bengio & Hajimirsadeghi, 2024,
arXiv:2410.01201).

An LSTM's gates read h_{t-1}, so training is a loop over time. minLSTM computes its forget and
input gates and its candidate from x_t alone, drops the output gate and the separate cell, and
normalises the two gates so they sum to 1 (the state's scale then does not grow with time):

    f_t, i_t = sigmoid(W_f x_t), sigmoid(W_i x_t);  f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)
    h_t = f'_t * h_{t-1} + i'_t * g(W_h x_t)

a linear recurrence h_t = a_t h_{t-1} + b_t with positive a, b, computed in parallel by a scan in
log space (`bestiary.layers.scan.scan_log_space`). The `mode` option picks that scan or the
step-by-step loop (same outputs); decoding one token at a time uses the loop, with O(1) state.

The language model is the paper's: residual blocks of [RMSNorm -> minLSTM] and [RMSNorm -> MLP],
with an optional causal depthwise convolution in front of the recurrence (`conv`). Simplified: the
convolution sits inside the mixer branch (the reference code adds it as its own residual branch).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.rnn import MIN_RNN_MODES, MinLSTMMixer
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
    "min_lstm",
    family="recurrent",
    config=Config,
    summary="minLSTM LM: an LSTM whose gates read only x_t, trained with a parallel log-space scan.",
    paper="Were RNNs All We Needed?",
    year=2024,
    arxiv="2410.01201",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=32, d_model=16, n_layers=2, d_ff=32, conv=True),
    outputs="logits (B, T, vocab_size)",
)
class MinLSTM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: MinLSTMMixer(c.d_model, c.expansion, c.mode, c.kernel_size if c.conv else 0),
            mlp=c.mlp,
            norm=c.norm,
            mlp_bias=True,
            dropout=c.dropout,
        )
        super().__init__(config, blocks)
