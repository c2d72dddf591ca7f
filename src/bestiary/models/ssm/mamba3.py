"""Mamba-3: trapezoidal discretisation and a complex (rotating) state, on Mamba-2's SSD.

Paper: "Mamba-3: Improved Sequence Modeling using State Space Principles" (2025, an ICLR 2026
submission on OpenReview, from the Mamba authors' line of work; no arXiv id recorded here).

Two changes to the SSM itself, each an exact statement about the recurrence:
1. Trapezoidal discretisation. Mamba-1/2 integrate the input with the Euler rule (dt B_t x_t).
   The trapezoid rule averages both ends of the step with a data-dependent weight lambda_t:
       h_t = alpha_t h_{t-1} + (1 - lambda_t) dt_t alpha_t B_{t-1} x_{t-1} + lambda_t dt_t B_t x_t,
   alpha_t = exp(dt_t A). lambda = 1 is Euler again; the extra term acts like a width-2 convolution
   inside the recurrence, which is why Mamba-3 drops the separate short conv.
2. A complex state. With A + i theta_t, each pair of state entries rotates by dt_t theta_t per step
   (theta_t from the input): a decaying oscillator instead of a pure decay, which lets the state
   count and track parity. Writing the state in a frame that rotates with the cumulative angle
   Phi_t = sum_{s<=t} dt_s theta_s turns this into a REAL scalar-decay SSM whose B_t and C_t are
   rotated by -Phi_t: a data-dependent RoPE on B and C. So Mamba-2's chunked SSD still applies.

`mode="chunked"`: the rotated real form through SSD (`layers.mamba.ssd_chunked`; by linearity the
trapezoid's two input terms are two SSD passes with the same decays). `mode="recurrent"` and
single-token decoding: the complex recurrence as written. The test checks they are equal (outputs
and gradients). Also from the paper: B and C are RMS-normalised (as query/key norms), no short
conv. Not implemented: MIMO (multi-input multi-output state updates) and the B/C biases; the
blocks are mixer-only as in Mamba-2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.mamba import GatedRMSNorm, inverse_softplus, sample_dt, ssd_chunked
from bestiary.layers.norms import RMSNorm
from bestiary.layers.scan import scan_sequential
from bestiary.layers.state import RecurrentState, zeros_or
from bestiary.options import Rule, option
from bestiary.registry import register

MODES = ("chunked", "recurrent")


def as_complex(t: torch.Tensor) -> torch.Tensor:
    """(..., N) real -> (..., N / 2) complex: entries (2k, 2k + 1) are one complex number."""
    return torch.view_as_complex(t.unflatten(-1, (-1, 2)).contiguous())


def as_real(t: torch.Tensor) -> torch.Tensor:
    """(..., N / 2) complex -> (..., N) real, the inverse of as_complex."""
    return torch.view_as_real(t).flatten(-2)


class Mamba3Mixer(nn.Module):
    """x (B, T, d_model) -> in_proj -> z, x (H heads of P), B, C (N, RMS-normed), dt, lambda (per head),
    theta (N / 2 angles) -> trapezoidal complex SSM per head -> GatedRMSNorm(y, z) -> out_proj."""

    def __init__(self, d_model: int, *, d_state: int, expand: int, head_dim: int, chunk_size: int, mode: str):
        super().__init__()
        self.d_model, self.d_inner, self.d_state = d_model, expand * d_model, d_state
        self.head_dim, self.n_heads = head_dim, expand * d_model // head_dim
        self.chunk_size, self.mode = chunk_size, mode
        H, N = self.n_heads, d_state
        self.split = [self.d_inner, self.d_inner, N, N, H, H, N // 2]  # z, x, B, C, dt, lambda, theta
        self.in_proj = nn.Linear(d_model, sum(self.split), bias=False)
        self.B_norm, self.C_norm = RMSNorm(N), RMSNorm(N)
        self.dt_bias = nn.Parameter(torch.empty(H))
        self.A_log = nn.Parameter(torch.empty(H))
        self.D = nn.Parameter(torch.empty(H))
        self.norm = GatedRMSNorm(self.d_inner, self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        if self.A_log.is_meta:
            return
        self.A_log.copy_(torch.log(torch.arange(1, self.n_heads + 1, dtype=torch.float32)))
        self.D.fill_(1.0)
        self.dt_bias.copy_(inverse_softplus(sample_dt(self.n_heads, 0.001, 0.1)))

    def init_cache(self, batch: int) -> RecurrentState:
        """ssm: the complex state (B, H, P, N / 2); x_prev (B, H, P) and B_prev (B, N / 2) complex:
        the last input, which the trapezoid rule uses again at the next step."""
        return RecurrentState(self, batch, ("ssm", "x_prev", "B_prev"))

    def _recurrent(self, x, dt, lam, log_alpha, omega, Bc, Cc, h0, x_prev, B_prev):
        """The complex recurrence as written: per head and state pair, a_t = alpha_t e^{i omega_t}."""
        a = torch.polar(torch.exp(log_alpha).unsqueeze(-1), omega)  # (b, T, H, N/2) complex
        x_before = torch.cat([x_prev.unsqueeze(1), x[:, :-1]], 1)  # (b, T, H, P): x_{t-1}
        B_before = torch.cat([B_prev.unsqueeze(1), Bc[:, :-1]], 1)  # (b, T, N/2): B_{t-1}
        now = (lam * dt)[..., None, None] * x.unsqueeze(-1) * Bc[:, :, None, None, :]  # (b, T, H, P, N/2)
        before = (
            ((1 - lam) * dt)[..., None, None]
            * a.unsqueeze(3)
            * x_before.unsqueeze(-1)
            * B_before[:, :, None, None, :]
        )
        h = scan_sequential(a.unsqueeze(3), now + before, h0)  # (b, T, H, P, N/2)
        y = (h * Cc.conj()[:, :, None, None, :]).sum(-1).real  # Re(C^* h): (b, T, H, P)
        return y, h[:, -1]

    def _chunked(self, x, dt, lam, log_alpha, omega, Bc, Cc, h0, x_prev, B_prev):
        """The same map as a real scalar-decay SSM with B, C rotated by -Phi_t (Phi from this call's start)."""
        b, T, H, P = x.shape
        phase = torch.polar(torch.ones_like(omega), -omega.cumsum(1))  # (b, T, H, N/2): e^{-i Phi_t}
        B_rot, C_rot = Bc.unsqueeze(2) * phase, Cc.unsqueeze(2) * phase  # (b, T, H, N/2)
        B_before = torch.cat([B_prev[:, None, None].expand(b, 1, H, -1), B_rot[:, :-1]], 1)  # frame of t-1
        x_before = torch.cat([x_prev.unsqueeze(1), x[:, :-1]], 1)
        alpha = torch.exp(log_alpha)
        g0 = None if h0 is None else as_real(h0)  # at the call's start Phi = 0: the frames agree
        y_now, g_now = ssd_chunked(
            x * (lam * dt)[..., None], log_alpha, as_real(B_rot), as_real(C_rot), self.chunk_size, g0
        )
        y_before, g_before = ssd_chunked(
            x_before * ((1 - lam) * dt * alpha)[..., None],
            log_alpha,
            as_real(B_before),
            as_real(C_rot),
            self.chunk_size,
        )
        g_last = as_complex(g_now + g_before)  # (b, H, P, N/2), in the frame of Phi_T
        h_last = g_last * phase[:, -1].conj().unsqueeze(2)  # back to the fixed frame: e^{+i Phi_T} g
        return y_now + y_before, h_last

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model). With `cache`, x holds only the new positions."""
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        batch, T, _ = x.shape
        z, u, B, C, dt, lam, theta = self.in_proj(x).split(self.split, dim=-1)
        u = u.unflatten(-1, (self.n_heads, self.head_dim))  # (B, T, H, P)
        Bc, Cc = as_complex(self.B_norm(B)), as_complex(self.C_norm(C))  # (B, T, N/2) complex
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        lam = torch.sigmoid(lam)  # (B, T, H): trapezoid weight, 1 = Euler
        log_alpha = -torch.exp(self.A_log) * dt  # (B, T, H)
        omega = dt.unsqueeze(-1) * theta.unsqueeze(2)  # (B, T, H, N/2): rotation this step
        dtype = torch.complex128 if x.dtype == torch.float64 else torch.complex64
        h0 = None if cache is None else cache["ssm"]
        x_prev = zeros_or(cache, "x_prev", lambda: u.new_zeros(batch, self.n_heads, self.head_dim))
        B_prev = zeros_or(cache, "B_prev", lambda: torch.zeros(batch, self.d_state // 2, dtype=dtype))
        form = self._recurrent if self.mode == "recurrent" or T == 1 else self._chunked
        y, h_last = form(u, dt, lam, log_alpha, omega, Bc, Cc, h0, x_prev, B_prev)
        y = y + self.D.unsqueeze(-1) * u  # (B, T, H, P)
        if cache is not None:
            cache["ssm"], cache["x_prev"], cache["B_prev"] = h_last, u[:, -1], Bc[:, -1]
            cache.length += T
        return self.out_proj(self.norm(y.flatten(2), z))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 32  # N (even: N / 2 rotating pairs)
    head_dim: int = 32
    expand: int = option(2, min=1)
    chunk_size: int = option(64, min=1)
    mode: str = option("chunked", choices=MODES)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


RULES = [
    Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (pairs of a complex state)"),
    Rule(
        lambda c: c.expand * c.d_model % c.head_dim == 0,
        "expand * d_model must be a multiple of head_dim={head_dim}",
    ),
]


@register(
    "mamba3",
    family="ssm",
    config=Config,
    summary="Mamba-3: trapezoidal discretisation and a complex (data-dependent RoPE) state on SSD heads.",
    paper="Mamba-3: Improved Sequence Modeling using State Space Principles",
    year=2025,
    arxiv=None,
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=8, head_dim=8, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
    rules=RULES,
)
class Mamba3(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: Mamba3Mixer(
                c.d_model,
                d_state=c.d_state,
                expand=c.expand,
                head_dim=c.head_dim,
                chunk_size=c.chunk_size,
                mode=c.mode,
            ),
            mlp=None,
            norm=c.norm,
        )
        super().__init__(config, blocks)
