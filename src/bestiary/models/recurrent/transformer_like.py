"""TransformerLike: a transformer's layout with an LSTM where the attention would be.

Source: the `tx_like` network of slippi-ai (vladfi1/slippi-ai, `networks.py`), the architecture of
its competitive Super Smash Bros. Melee agents, as documented by the Elixir library Edifice
(module `Edifice.Recurrent.TransformerLike`) that the project's plans came from. No paper of its
own: it borrows the residual layout of the transformer ("Attention Is All You Need", Vaswani et
al., 2017, arXiv:1706.03762) and keeps the LSTM (Hochreiter & Schmidhuber, 1997) as the token mixer.

Each layer is two residual steps on a stream of width d_model, like a transformer block:

    x = x + LSTM([norm](x))             the recurrence mixes time; no norm unless recurrent_norm
    x = x + FFN(norm(x))                a pre-norm MLP, d_model -> d_ff -> d_model, per position

then a final norm. The point is what a game agent needs: a constant-size state per layer (it acts
every frame, forever), with the depth and easy optimisation of a residual stream. `cell` swaps the
LSTM for a GRU.

Sequence model: (B, T, in_dim) -> (B, T, d_model), with an input projection when in_dim differs;
decoding keeps each layer's recurrent state (`init_cache`). Edifice returns only the last step;
here every step comes out, as for the other sequence models.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.drop_path import make_dropout
from bestiary.layers.kv_cache import Cache
from bestiary.layers.mlp import FeedForward
from bestiary.layers.norms import make_norm
from bestiary.layers.rnn import GRUMixer, LSTMMixer
from bestiary.options import option
from bestiary.registry import register

CELLS = {"lstm": LSTMMixer, "gru": GRUMixer}


@dataclass(kw_only=True)
class Config:
    in_dim: int = 32
    d_model: int = 512  # the residual stream
    n_layers: int = 3  # recurrent + FFN pairs
    d_ff: int = 1024  # slippi-ai: 2 x d_model
    cell: str = option("lstm", choices=tuple(CELLS))
    mlp: str = "gelu"  # the FFN's activation
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-6
    recurrent_norm: bool = False  # norm the recurrence's input too (slippi-ai's default: no)
    dropout: float = 0.0


class RecurrentFFNLayer(nn.Module):
    """x + cell([norm](x)), then x + FFN(norm(x)): (B, T, D) -> (B, T, D)."""

    def __init__(self, c: Config):
        super().__init__()
        self.rnn_norm = make_norm(c.norm, c.d_model, c.norm_eps) if c.recurrent_norm else nn.Identity()
        self.rnn = CELLS[c.cell](c.d_model)
        self.ffn_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.ffn = FeedForward(c.d_model, c.d_ff, activation=c.mlp, dropout=c.dropout)
        self.dropout = make_dropout(c.dropout)

    def init_cache(self, batch: int):
        return self.rnn.init_cache(batch)

    def forward(self, x: torch.Tensor, *, cache=None) -> torch.Tensor:
        x = x + self.dropout(self.rnn(self.rnn_norm(x), cache=cache))  # a bare residual recurrence
        return x + self.ffn(self.ffn_norm(x))


@register(
    "transformer_like",
    family="recurrent",
    config=Config,
    summary="TransformerLike (slippi-ai): residual LSTM layers alternating with pre-norm FFNs, a transformer's layout with a recurrent mixer.",
    paper="slippi-ai TransformerLike (tx_like), via Edifice; no paper",
    year=None,
    arxiv=None,
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=16, n_layers=2, d_ff=32),
    outputs="hidden states (B, T, d_model)",
)
class TransformerLike(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.input_proj = nn.Linear(c.in_dim, c.d_model) if c.in_dim != c.d_model else nn.Identity()
        self.layers = nn.ModuleList(RecurrentFFNLayer(c) for _ in range(c.n_layers))
        self.norm = make_norm(c.norm, c.d_model, c.norm_eps)

    def init_cache(self, batch: int = 1) -> Cache:
        """Each layer's recurrent state (constant size), and the count of positions read."""
        return Cache([layer.init_cache(batch) for layer in self.layers], owner=self, batch=batch)

    def forward_features(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        """A sequence model has no head: its features are its output (B, T, d_model)."""
        return self.forward(x, cache=cache)

    def forward(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model). With `cache`, x holds the steps after those read."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        if cache is not None:
            cache.check(self, x.shape[0])
        x = self.input_proj(x)  # (B, T, d_model)
        for i, layer in enumerate(self.layers):
            x = layer(x, cache=None if cache is None else cache[i])
        if cache is not None:
            cache.advance(x.shape[1])
        return self.norm(x)
