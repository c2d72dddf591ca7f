"""Deep residual LSTM: a deep stack of LSTM layers with residual connections between them (GNMT).

Paper: "Google's Neural Machine Translation System: Bridging the Gap between Human and Machine
Translation" (Wu, Schuster, Chen, Le, Norouzi et al., 2016, arXiv:1609.08144), section 3.1.

Plain stacked LSTMs stop improving beyond about four layers: gradients reaching the lower layers
through many nonlinear layers vanish, and training slows. GNMT adds each layer's input to its output
from the third layer up,

    x_{i+1} = LSTM_i(x_i) + x_i,

the residual connection of ResNets (He et al., 2015, arXiv:1512.03385) applied across depth (not
time), so each layer learns a correction to the identity and 8-layer encoder and decoder stacks
train well. The lowest layers stay plain (`residual_from`, 2 in GNMT; the first layer's input may
have another width anyway).

Simplified: one direction only (GNMT's first encoder layer is bidirectional), no attention or
decoder: the residual stack itself, as a causal sequence model.

Sequence model: (B, T, in_dim) -> (B, T, d_model); `init_cache` keeps (h, c) per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.rnn import LSTMMixer, RecurrentStack
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 32
    d_model: int = 256
    n_layers: int = 8
    residual_from: int = option(2, min=1)  # layers with index >= this add their input (GNMT: the third on)
    dropout: float = 0.0  # between layers


@register(
    "deep_res_lstm",
    family="recurrent",
    config=Config,
    summary="Deep stacked LSTM with residual connections between layers (GNMT), trainable at depth 8+.",
    paper="Google's Neural Machine Translation System: Bridging the Gap between Human and Machine Translation",
    year=2016,
    arxiv="1609.08144",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=16, n_layers=3, residual_from=1),
    outputs="hidden states of the last layer (B, T, d_model)",
)
class DeepResLSTM(RecurrentStack):
    def __init__(self, config: Config):
        c = config
        layers = [LSTMMixer(c.d_model, c.in_dim if i == 0 else c.d_model) for i in range(c.n_layers)]
        super().__init__(layers, c.in_dim, c.dropout, residual_from=c.residual_from)
        self.config = config
        self.num_features = c.d_model
