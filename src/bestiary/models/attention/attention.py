"""Temporal attention for sequence processing: an RNN that attends over its own past states.

Papers: "Neural Machine Translation by Jointly Learning to Align and Translate" (Bahdanau, Cho,
Bengio, 2014, arXiv:1409.0473), additive attention; "Effective Approaches to Attention-based Neural
Machine Translation" (Luong, Pham, Manning, 2015, arXiv:1508.04025), multiplicative attention and
the attentional hidden state.

Before transformers, attention was a layer on top of a recurrent network: the RNN reads the
sequence into states h_1..h_T, and at each step t a score e_tj says how relevant step j is, the
softmax of the scores weighs the states into a context c_t, and the output combines the context
with the current state. The scores come in three classic forms:
    additive (Bahdanau):        e_tj = vᵀ tanh(W_q h_t + W_k h_j)
    general (Luong):            e_tj = h_tᵀ W h_j
    dot (Luong):                e_tj = h_tᵀ h_j
and Luong's attentional state is h̃_t = tanh(W_c [c_t; h_t]). For a temporal model (time-series
forecasting, a causal sequence encoder) the attention is causal: step t weighs h_1..h_t only, so
the model can run step by step, keeping its RNN state and its past states (a growing cache).

Sequence model: (B, T, in_dim) -> (B, T, d_model). Simplified: a GRU as the recurrent network and
self-attention over its own states (the papers attend from a decoder to an encoder); one head.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention_variants import KVExtrasCache
from bestiary.layers.checks import check_shape
from bestiary.layers.masks import causal_mask
from bestiary.options import option
from bestiary.registry import register

SCORES = ("additive", "general", "dot")


class TemporalCache(KVExtrasCache):
    """The GRU's state (n_layers, B, d_model) and every past top-layer state (B, T, d_model)."""

    def __init__(self, batch: int, owner: nn.Module) -> None:
        super().__init__(("states",))
        self.batch = batch
        self.owner = weakref.ref(owner)  # the model that made it
        self.rnn_state: torch.Tensor | None = None

    def crop(self, length: int) -> None:
        raise TypeError("the GRU's state has mixed every position together: it cannot forget positions")

    def nbytes(self) -> int:
        rnn = 0 if self.rnn_state is None else self.rnn_state.numel() * self.rnn_state.element_size()
        return super().nbytes() + rnn


class TemporalAttention(nn.Module):
    """Causal attention of each state h_t over h_1..h_t, then h̃_t = tanh(W_c [c_t; h_t]).

    queries: the new states (B, T, D); states: all states so far (B, Tk, D), the new ones last."""

    def __init__(self, d_model: int, score: str = "additive"):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.score = score
        if score == "additive":
            self.query_proj = nn.Linear(d_model, d_model, bias=False)  # W_q
            self.key_proj = nn.Linear(d_model, d_model, bias=False)  # W_k
            self.v = nn.Linear(d_model, 1, bias=False)
        elif score == "general":
            self.bilinear = nn.Linear(d_model, d_model, bias=False)  # W
        self.combine = nn.Linear(2 * d_model, d_model, bias=False)  # W_c

    def scores(self, queries: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """e (B, T, Tk) for queries (B, T, D) and states (B, Tk, D)."""
        if self.score == "additive":  # every (t, j) pair through a small tanh network
            pairs = torch.tanh(
                self.query_proj(queries)[:, :, None] + self.key_proj(states)[:, None]
            )  # (B, T, Tk, D)
            return self.v(pairs)[..., 0]
        if self.score == "general":
            return queries @ self.bilinear(states).transpose(1, 2)  # h_tᵀ W h_j
        return queries @ states.transpose(1, 2)

    def forward(self, queries: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        hidden = ~causal_mask(queries.shape[1], states.shape[1], queries.device)  # (T, Tk): the future
        weights = self.scores(queries, states).masked_fill(hidden, float("-inf")).softmax(dim=-1)
        context = weights @ states  # (B, T, D): c_t
        return torch.tanh(self.combine(torch.cat([context, queries], dim=-1)))  # h̃_t


@dataclass(kw_only=True)
class Config:
    in_dim: int = 8
    d_model: int = 64
    n_layers: int = 1  # stacked GRU layers
    score: str = option("additive", choices=SCORES)  # Bahdanau's additive, Luong's general or dot
    dropout: float = 0.0


@register(
    "attention",
    family="attention",
    config=Config,
    summary="A GRU with causal temporal attention over its own past states (Bahdanau additive or Luong scores).",
    paper="Neural Machine Translation by Jointly Learning to Align and Translate",
    year=2014,
    arxiv="1409.0473",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=16, n_layers=1),
    outputs="features (B, T, d_model)",
)
class TemporalAttentionRNN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.rnn = nn.GRU(
            c.in_dim, c.d_model, c.n_layers, batch_first=True, dropout=c.dropout if c.n_layers > 1 else 0.0
        )
        self.attention = TemporalAttention(c.d_model, c.score)

    def init_cache(self, batch: int = 1) -> TemporalCache:
        return TemporalCache(batch, owner=self)

    def forward_features(self, x: torch.Tensor, *, cache: TemporalCache | None = None) -> torch.Tensor:
        return self.forward(x, cache=cache)

    def forward(self, x: torch.Tensor, *, cache: TemporalCache | None = None) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model). With `cache`, x holds the steps after those read."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        if cache is not None and cache.owner() is not self:
            raise ValueError("this cache was made by another model: make one with model.init_cache(batch)")
        if cache is not None and cache.batch != x.shape[0]:
            raise ValueError(
                f"this cache was made for batch {cache.batch}, but the input has batch {x.shape[0]}"
            )
        states, rnn_state = self.rnn(x, None if cache is None else cache.rnn_state)  # (B, T, D)
        all_states = states
        if cache is not None:
            cache.rnn_state = rnn_state
            all_states = cache.update_extra("states", states)  # (B, Tk, D)
        return self.attention(states, all_states)
