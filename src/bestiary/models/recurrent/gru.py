"""GRU: a stack of Gated Recurrent Unit layers, written from the cell equations.

Paper: "Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine
Translation" (Cho, van Merrienboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio, 2014,
arXiv:1406.1078).

The GRU keeps the LSTM's idea (an additive, gated path for memory) with one state instead of two:
an update gate z_t interpolates between the old state and a candidate, h_t = (1 - z_t) n_t + z_t
h_{t-1}, and a reset gate r_t decides how much of the past the candidate n_t may read. Fewer
parameters than an LSTM (3 gate blocks instead of 4) and, on many tasks, the same accuracy
(Chung et al., 2014, arXiv:1412.3555).

Same parameters, gate order (r, z, n) and bias placement as torch.nn.GRU (the reset gate multiplies
W_hn h + b_hn, cuDNN's variant of the paper's r * h inside the matmul). One direction only.

Sequence model: (B, T, in_dim) -> (B, T, d_model); `init_cache` keeps h per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.rnn import GRUMixer, RecurrentStack
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 32
    d_model: int = 128  # hidden size of every layer
    n_layers: int = 2
    dropout: float = 0.0  # between layers, not after the last


@register(
    "gru",
    family="recurrent",
    config=Config,
    summary="Stacked GRU layers: one state, an update gate that interpolates old and new.",
    paper="Learning Phrase Representations using RNN Encoder-Decoder for Statistical Machine Translation",
    year=2014,
    arxiv="1406.1078",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=16, n_layers=2),
    outputs="hidden states of the last layer (B, T, d_model)",
)
class GRU(RecurrentStack):
    def __init__(self, config: Config):
        c = config
        layers = [GRUMixer(c.d_model, c.in_dim if i == 0 else c.d_model) for i in range(c.n_layers)]
        super().__init__(layers, c.in_dim, c.dropout)
        self.config = config
        self.num_features = c.d_model
