"""S4: the structured state space sequence model, with its diagonal-plus-low-rank HiPPO matrix.

Paper: "Efficiently Modeling Long Sequences with Structured State Spaces" (Gu, Goel & Re, 2021,
arXiv:2111.00396).

A linear SSM x' = A x + B u, y = C x + D u, sampled with a step dt, is both a recurrence and a
causal convolution with kernel K_l = C A_bar^l B_bar. S4's A is HiPPO-LegS, the matrix whose state
keeps the best polynomial summary of the whole past, which is what lets it model dependencies over
thousands of steps. HiPPO-LegS is not diagonalisable stably, but it is *normal plus low rank*:
A = V (Lambda - p p*) V*, with V unitary. In the V basis the state matrix is diag(Lambda) - p p*,
and Lambda, p, B, C, dt are the learned parameters. The layer trains as an FFT convolution with
kernel K and decodes as the recurrence x_k = A_bar x_{k-1} + B_bar u_k (this model's cache).

The block is the S4 repository's: SSM (+ D skip) -> GELU -> Linear to 2D -> GLU, pre-norm residual,
then an MLP.

Simplified: the paper computes K with a truncated generating function, a Cauchy kernel and the
Woodbury identity at the roots of unity (O(N + L) per channel). Here the bilinear A_bar is
materialised as a dense N x N matrix per channel and K comes from the Krylov sequence
A_bar^l B_bar by repeated squaring (`krylov`): exact, the same kernel, but O(N^2 L) work, fine for
small N. The full complex state of size N is kept (no conjugate-pair halving) and y = Re(C x).
Lambda and p are shared by all channels (the paper's default); B, C and dt are per channel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.ssm_kernels import SSMGLUMixer, discretize_bilinear, fft_causal_conv, krylov, nplr_legs
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_277
    d_model: int = 768
    n_layers: int = 12
    d_state: int = 64  # N: HiPPO-LegS's order
    d_ff: int = 3072
    mlp: str = "gelu"
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    mode: str = option("convolution", choices=("convolution", "recurrent"))
    dt_min: float = option(1e-3, gt=0.0)
    dt_max: float = option(1e-1, gt=0.0)


def _complex_parameter(z: torch.Tensor) -> nn.Parameter:
    """A complex tensor stored as its (real, imag) pairs: every parameter stays a real tensor."""
    return nn.Parameter(torch.view_as_real(z.to(torch.complex64)).clone())


class DPLRSSM(nn.Module):
    """H SISO SSMs sharing the state matrix diag(Lambda) - p p* (N x N, complex), bilinear discretised.

    forward(u (B, T, H), h0 (B, H, N) complex or None, mode) -> (y (B, T, H), h_last (B, H, N))."""

    def __init__(self, channels: int, d_state: int, dt_min: float, dt_max: float):
        super().__init__()
        Lambda, V, P, B = nplr_legs(d_state)
        # Lambda = -exp(log_neg_real) + i imag keeps the real parts negative
        self.log_neg_real = nn.Parameter(torch.log(-Lambda.real).float())
        self.imag = nn.Parameter(Lambda.imag.float())
        # the low-rank term and B, rotated into the basis where the normal part is diagonal
        self.P = _complex_parameter(V.conj().T @ P.to(torch.complex128))  # (N,)
        self.B = _complex_parameter((V.conj().T @ B.to(torch.complex128)).expand(channels, d_state))  # (H, N)
        self.C = _complex_parameter(torch.randn(channels, d_state, dtype=torch.complex128) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(channels))
        self.log_dt = nn.Parameter(torch.rand(channels) * math.log(dt_max / dt_min) + math.log(dt_min))

    def state_matrix(self) -> torch.Tensor:
        """diag(Lambda) - p p*: (N, N) complex."""
        Lambda = torch.complex(-torch.exp(self.log_neg_real), self.imag)
        p = torch.view_as_complex(self.P)
        return torch.diag(Lambda) - p[:, None] * p.conj()[None, :]

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(A_bar (H, N, N), B_bar (H, N), C (H, N)), complex."""
        A_bar, B_bar = discretize_bilinear(
            self.state_matrix(), torch.view_as_complex(self.B), torch.exp(self.log_dt)
        )
        return A_bar, B_bar, torch.view_as_complex(self.C)

    def kernel(self, length: int) -> torch.Tensor:
        """K_l = Re(C A_bar^l B_bar): (H, length)."""
        A_bar, B_bar, C = self.discretize()
        return torch.einsum("hn,hln->hl", C, krylov(A_bar, B_bar, length)).real

    def forward(
        self, u: torch.Tensor, h0: torch.Tensor | None = None, *, mode: str = "convolution"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        A_bar, B_bar, C = self.discretize()
        if mode == "recurrent":
            h = u.new_zeros(u.shape[0], *B_bar.shape, dtype=B_bar.dtype) if h0 is None else h0
            outputs = []
            for t in range(u.shape[1]):
                h = torch.einsum("hij,bhj->bhi", A_bar, h) + B_bar * u[:, t, :, None]  # (B, H, N)
                outputs.append(torch.einsum("hn,bhn->bh", C, h).real)
            return torch.stack(outputs, 1) + self.D * u, h
        T = u.shape[1]
        powers_B = krylov(A_bar, B_bar, T)  # (H, T, N): A_bar^l B_bar
        y = fft_causal_conv(u, torch.einsum("hn,hln->hl", C, powers_B).real) + self.D * u  # (B, T, H)
        # the state after the chunk: sum_s A_bar^(T-1-s) B_bar u_s (+ A_bar^T h0)
        h_last = torch.einsum("hln,blh->bhn", powers_B.flip(1), u.to(powers_B.dtype))
        if h0 is not None:
            powers_h0 = krylov(A_bar, h0, T + 1)  # (B, H, T + 1, N): A_bar^l h0
            y = y + torch.einsum("hn,bhtn->bth", C, powers_h0[:, :, 1:]).real
            h_last = h_last + powers_h0[:, :, T]
        return y, h_last


class S4Mixer(SSMGLUMixer):
    """x (B, T, D) -> S4 along time, per channel -> GELU -> GLU across channels -> (B, T, D).

    cache: a RecurrentState holding "h" (B, D, N) complex."""

    def __init__(self, config: Config):
        c = config
        super().__init__(c.d_model, DPLRSSM(c.d_model, c.d_state, c.dt_min, c.dt_max), c.mode, c.dropout)


@register(
    "s4",
    family="ssm",
    config=Config,
    summary="S4: HiPPO-LegS state matrix as normal plus low rank, convolution kernel to train, recurrence to decode.",
    paper="Efficiently Modeling Long Sequences with Structured State Spaces",
    year=2021,
    arxiv="2111.00396",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=8, d_ff=32),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(
            lambda c: c.dt_min <= c.dt_max, "dt_min={dt_min} must be <= dt_max={dt_max}", ("dt_min", "dt_max")
        ),
    ),
)
class S4(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: S4Mixer(c), mlp=c.mlp, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
