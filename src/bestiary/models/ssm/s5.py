"""S5: one multi-input, multi-output diagonal SSM, run with a parallel scan.

Paper: "Simplified State Space Layers for Sequence Modeling" (Smith, Warrington & Linderman, 2022,
arXiv:2208.04933).

S4 runs H independent single-input SSMs (one per channel) and mixes channels afterwards. S5 runs
ONE SSM whose input and output are the whole H-dimensional vector: x_k = A_bar x_{k-1} + B_bar u_k,
y_k = C x_k + D u_k, with B (P, H) and C (H, P). With A diagonal (P complex modes, initialised to
the eigenvalues of HiPPO-N, the normal part of HiPPO-LegS, and B, C rotated into that eigenbasis),
the recurrence is elementwise, h_t = a * h_{t-1} + b_t, so it needs no convolution kernel at all:
an associative (parallel) scan computes every state in log depth (`scan_hillis_steele`), or the
chunked closed form (`scan_cumsum`), or the plain loop (decoding). Each state has its own step dt
(ZOH discretisation). The layer ends with S5's gated nonlinearity, GELU(y) * sigmoid(W GELU(y)).

Simplified: the HiPPO-N initialisation is one block (the paper can split it into J block-diagonal
copies); conjugate symmetry is used (P/2 modes kept, y = 2 Re(C x)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.scan import scan_cumsum, scan_hillis_steele, scan_sequential
from bestiary.layers.ssm_kernels import discretize_zoh, nplr_legs
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register

SCANS = {"parallel": scan_hillis_steele, "cumsum": scan_cumsum, "recurrent": scan_sequential}


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_277
    d_model: int = 512
    n_layers: int = 6
    d_state: int = 256  # P: the real state size (P/2 complex conjugate pairs are kept)
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    mode: str = option("parallel", choices=tuple(SCANS))
    dt_min: float = option(1e-3, gt=0.0)
    dt_max: float = option(1e-1, gt=0.0)


class S5Mixer(nn.Module):
    """x (B, T, D) -> the MIMO SSM -> GELU(y) * sigmoid(W GELU(y)) -> (B, T, D).

    cache: a RecurrentState holding "h" (B, P/2) complex."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.mode = c.d_model, c.mode
        Lambda, V, _, _ = nplr_legs(c.d_state)
        # one eigenvalue of each conjugate pair: eigh sorts the imaginary parts, keep the positive half
        Lambda, V = Lambda[c.d_state // 2 :], V[:, c.d_state // 2 :]  # (P/2,), (P, P/2)
        # A = -exp(log_neg_real) + i imag: stable at any value of the parameters
        self.log_neg_real = nn.Parameter(torch.log(-Lambda.real).float())
        self.imag = nn.Parameter(Lambda.imag.float())
        B = torch.randn(c.d_state, c.d_model, dtype=torch.float64) / math.sqrt(c.d_model)  # lecun normal
        C = torch.randn(c.d_model, c.d_state, dtype=torch.float64) / math.sqrt(c.d_state)
        # B~ = V* B and C~ = C V: the same system written in A's eigenbasis (stored as real, imag pairs)
        self.B = nn.Parameter(torch.view_as_real(V.conj().T @ B.to(V.dtype)).float())  # (P/2, D, 2)
        self.C = nn.Parameter(torch.view_as_real(C.to(V.dtype) @ V).float())  # (D, P/2, 2)
        self.D = nn.Parameter(torch.randn(c.d_model))
        modes = c.d_state // 2
        self.log_dt = nn.Parameter(torch.rand(modes) * math.log(c.dt_max / c.dt_min) + math.log(c.dt_min))
        self.gate = nn.Linear(c.d_model, c.d_model)
        self.dropout = nn.Dropout(c.dropout)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def ssm(self, u: torch.Tensor, h0: torch.Tensor | None, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """u (B, T, D) -> (y (B, T, D), every state h (B, T, P/2))."""
        A = torch.complex(-torch.exp(self.log_neg_real), self.imag)  # (P/2,)
        dt = torch.exp(self.log_dt)
        A_bar, factor = discretize_zoh(dt * A)  # per-state step
        B_bar = (factor * dt)[:, None] * torch.view_as_complex(self.B.contiguous())  # (P/2, D)
        b = torch.einsum("pd,btd->btp", B_bar, u.to(B_bar.dtype))  # (B, T, P/2)
        h = SCANS[mode](A_bar.expand_as(b), b, h0)  # (B, T, P/2)
        C = torch.view_as_complex(self.C.contiguous())  # (D, P/2)
        return 2 * torch.einsum("dp,btp->btd", C, h).real + self.D * u, h

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is None:
            y, _ = self.ssm(x, None, self.mode)
        else:
            cache.check(self, x)
            y, h = self.ssm(x, cache["h"], "recurrent" if x.shape[1] == 1 else self.mode)
            cache["h"] = h[:, -1]
            cache.length += x.shape[1]
        y = self.dropout(F.gelu(y))
        return y * torch.sigmoid(self.gate(y))  # S5's weighted sigmoid gate


@register(
    "s5",
    family="ssm",
    config=Config,
    summary="S5: one MIMO diagonal SSM (HiPPO-N init, per-state ZOH step) computed with a parallel scan.",
    paper="Simplified State Space Layers for Sequence Modeling",
    year=2022,
    arxiv="2208.04933",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=8),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (conjugate pairs)", ("d_state",)),
        Rule(
            lambda c: c.dt_min <= c.dt_max, "dt_min={dt_min} must be <= dt_max={dt_max}", ("dt_min", "dt_max")
        ),
    ),
)
class S5(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: S5Mixer(c), mlp=None, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
