"""LSTM: a stack of Long Short-Term Memory layers, written from the cell equations.

Paper: "Long Short-Term Memory" (Hochreiter & Schmidhuber, 1997, Neural Computation 9(8)); the
forget gate is from "Learning to Forget: Continual Prediction with LSTM" (Gers, Schmidhuber &
Cummins, 2000). No arXiv id.

A plain RNN multiplies its gradient by the same recurrent matrix at every step, so it vanishes or
explodes over long spans. The LSTM carries a cell c_t forward by a gated *sum*,
c_t = f_t * c_{t-1} + i_t * g_t, and exposes h_t = o_t * tanh(c_t): with the forget gate near 1
the cell (and its gradient) passes through many steps nearly unchanged. Layers stack: each reads
the hidden states of the one below, with dropout in between (Zaremba et al., 2014, arXiv:1409.2329).

Same parameters and gate order (i, f, g, o) as torch.nn.LSTM, so its weights copy across. Simplified:
no peephole connections, no projection (proj_size), one direction (the model is causal).

Sequence model: (B, T, in_dim) -> (B, T, d_model); `init_cache` keeps (h, c) per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.rnn import LSTMMixer, RecurrentStack
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 32
    d_model: int = 128  # hidden (and cell) size of every layer
    n_layers: int = 2
    dropout: float = 0.0  # between layers, not after the last


def _zaremba(d_model: int, params: int) -> Preset:
    return Preset(
        dict(in_dim=d_model, d_model=d_model, n_layers=2, dropout=0.5 if d_model == 650 else 0.65),
        params=params,
        source=f"torch.nn.LSTM({d_model}, {d_model}, num_layers=2): the recurrent stack of Zaremba et al. "
        "2014 (arXiv:1409.2329), without its embedding and softmax",
    )


@register(
    "lstm",
    family="recurrent",
    config=Config,
    summary="Stacked LSTM layers: a gated cell carried forward by a sum (long-range memory).",
    paper="Long Short-Term Memory",
    year=1997,
    arxiv=None,
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=16, n_layers=2),
    presets={
        "lstm_zaremba_medium": _zaremba(650, 6_770_400),
        "lstm_zaremba_large": _zaremba(1500, 36_024_000),
    },
    outputs="hidden states of the last layer (B, T, d_model)",
)
class LSTM(RecurrentStack):
    def __init__(self, config: Config):
        c = config
        layers = [LSTMMixer(c.d_model, c.in_dim if i == 0 else c.d_model) for i in range(c.n_layers)]
        super().__init__(layers, c.in_dim, c.dropout)
        self.config = config
        self.num_features = c.d_model
