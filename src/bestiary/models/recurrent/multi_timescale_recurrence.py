"""Multi-timescale recurrence: parallel recurrent cores that update at different temporal strides
(the Clockwork RNN).

Paper: "A Clockwork RNN" (Koutník, Greff, Gomez & Schmidhuber, 2014, ICML, arXiv:1402.3511).

A single recurrent state must serve both fast and slow features of a signal, and gradients through
it fade over long spans. The Clockwork RNN splits the hidden state into n cores of equal width, core
i with its own period T_i = base^i (1, 2, 4, 8, ...). At step t only the cores with t mod T_i == 0
update; the others hold their state unchanged:

    h_t[i] = tanh(W_I[i] x_t + W_H[i] h_{t-1})   if t mod T_i == 0,   else  h_t[i] = h_{t-1}[i]

A slow core sees one input every T_i steps and keeps its state for T_i steps, so it carries
information over spans T_i times longer at the same cost in (core) steps; and it is cheap, as most
cores are idle most of the time. Connections run from slower cores to faster ones only (W_H is block
upper-triangular with cores ordered fast to slow): fast cores read the slow context, slow cores are
not disturbed by fast noise. `slow_to_fast=False` makes the cores fully independent (parallel
clocks, each reading only the input and itself).

Simplified: the idle cores are computed and then masked (clearer than gathering the active ones; the
paper's speed-up is not realised), no output layer (the features are the concatenated core states).

Sequence model: (B, T, in_dim) -> (B, T, d_model); the cache keeps the state and the clock (the
number of steps read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.state import RecurrentState, zeros_or
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 8
    d_model: int = 128  # all cores together
    n_cores: int = option(4, min=1)  # core i has period period_base ** i
    period_base: int = option(2, min=2)
    slow_to_fast: bool = True  # slower cores feed faster ones (the paper); False: independent cores


@register(
    "multi_timescale_recurrence",
    family="recurrent",
    config=Config,
    summary="Clockwork RNN: recurrent cores with exponential periods; slow cores update rarely, feed fast ones.",
    paper="A Clockwork RNN",
    year=2014,
    arxiv="1402.3511",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=3, d_model=12, n_cores=3),
    outputs="concatenated core states (B, T, d_model)",
    rules=(
        Rule(
            lambda c: c.d_model % c.n_cores == 0, "d_model={d_model} must be divisible by n_cores={n_cores}"
        ),
    ),
)
class ClockworkRNN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = self.config = config
        self.num_features = c.d_model
        width = c.d_model // c.n_cores
        core_of_unit = torch.arange(c.d_model) // width  # (D,): which core each hidden unit belongs to
        self.register_buffer("periods", c.period_base**core_of_unit, persistent=False)  # (D,)
        # W_H[r, s] may be nonzero when unit s's core is as slow as or slower than unit r's core
        # (or, for independent cores, is the same core)
        allowed = core_of_unit[None, :] >= core_of_unit[:, None]
        if not c.slow_to_fast:
            allowed = core_of_unit[None, :] == core_of_unit[:, None]
        self.register_buffer("recurrent_mask", allowed.float(), persistent=False)  # (D, D)
        self.input_proj = nn.Linear(c.in_dim, c.d_model)  # W_I and the bias
        self.recurrent = nn.Parameter(torch.empty(c.d_model, c.d_model))  # W_H (masked in forward)
        bound = 1 / math.sqrt(width)
        nn.init.uniform_(self.recurrent, -bound, bound)

    def init_cache(self, batch: int = 1) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def forward_features(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        return self.forward(x, cache=cache)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model). With a cache, the clock continues at cache.length."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        if cache is not None:
            cache.check(self, x)
        start = 0 if cache is None else cache.length
        h = zeros_or(cache, "h", lambda: x.new_zeros(x.shape[0], self.config.d_model))
        w_h = self.recurrent * self.recurrent_mask  # (D, D): no fast -> slow connections
        drive = self.input_proj(x)  # (B, T, D)
        outputs = []
        for t in range(x.shape[1]):
            active = (start + t) % self.periods == 0  # (D,): the units whose core ticks now
            h = torch.where(active, torch.tanh(drive[:, t] + h @ w_h.T), h)
            outputs.append(h)
        if cache is not None:
            cache["h"] = h
            cache.length += x.shape[1]
        return torch.stack(outputs, dim=1)  # (B, T, D)
