"""GSS: the Gated State Space layer.

Paper: "Long Range Language Modeling via Gated State Spaces" (Mehta, Gupta, Cutkosky & Neyshabur,
2022, arXiv:2206.13947).

A diagonal SSM is cheap per channel but mixes nothing across channels, and running it at the full
model width is what costs. GSS wraps a *narrow* SSM in a gated unit (as in GAU / FLASH):

    v  = GELU(Linear(x))            (B, T, F)     the wide gate branch (F = d_ff)
    u  = GELU(Linear(x))            (B, T, H)     a narrow branch (H = d_ssm, e.g. d_model / 4)
    y  = SSM(u)                     (B, T, H)     a diagonal state space along time
    o  = Linear(Linear(y) ⊙ v)      (B, T, D)     back up to F, gate, project to d_model

The gate lets the cheap SSM do only the long-range part; the model trains 2-3x faster than DSS at
equal quality. The layer is the whole block (no separate MLP): x + GSS(norm(x)).

Simplified: the SSM is S4D (ZOH, S4D-Lin init) instead of the paper's DSS-EXP parameterisation;
both are diagonal SSMs with a Vandermonde kernel. Decoding runs it as a recurrence.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.ssm_kernels import DiagonalSSM
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32_000
    d_model: int = 1024  # E in the paper
    n_layers: int = 16
    d_ff: int = 3072  # F: the gate branch's width
    d_ssm: int = option(256, min=1)  # H: the SSM branch's width
    d_state: int = 512  # N: the SSM's state size (N/2 complex pairs)
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    mode: str = option("convolution", choices=("convolution", "recurrent"))


class GSSMixer(nn.Module):
    """x (B, T, D) -> (B, T, D). cache: RecurrentState with "h" (B, d_ssm, N/2) complex."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.mode = c.d_model, c.mode
        self.gate_proj = nn.Linear(c.d_model, c.d_ff)  # v
        self.ssm_in = nn.Linear(c.d_model, c.d_ssm)  # u
        self.ssm = DiagonalSSM(c.d_ssm, c.d_state, init="lin")
        self.ssm_out = nn.Linear(c.d_ssm, c.d_ff)  # uc
        self.out_proj = nn.Linear(c.d_ff, c.d_model)
        self.dropout = nn.Dropout(c.dropout)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        v = F.gelu(self.gate_proj(x))  # (B, T, F)
        u = F.gelu(self.ssm_in(x))  # (B, T, H)
        if cache is None:
            y, _ = self.ssm(u, mode=self.mode)
        else:
            cache.check(self, x)
            y, cache["h"] = self.ssm(u, cache["h"], mode="recurrent" if x.shape[1] == 1 else self.mode)
            cache.length += x.shape[1]
        return self.out_proj(self.dropout(self.ssm_out(y) * v))


@register(
    "gss",
    family="ssm",
    config=Config,
    summary="GSS: a narrow diagonal SSM inside a wide multiplicative gate (gated state space layer).",
    paper="Long Range Language Modeling via Gated State Spaces",
    year=2022,
    arxiv="2206.13947",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_ff=32, d_ssm=8, d_state=8),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (conjugate pairs)", ("d_state",)),
    ),
)
class GSS(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: GSSMixer(c), mlp=None, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
