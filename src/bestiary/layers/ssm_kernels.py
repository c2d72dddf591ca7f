"""Structured state-space models (S4, S4D, S5, H3, GSS): HiPPO, discretisation, kernels, long convolutions.

A linear time-invariant SSM maps an input u(t) to an output y(t) through a state x(t) of size N:

    x'(t) = A x(t) + B u(t),    y(t) = C x(t) + D u(t)

Sampled with a step dt it becomes a recurrence, x_k = A_bar x_{k-1} + B_bar u_k, y_k = C x_k + D u_k,
and unrolling the recurrence from x_{-1} = 0 turns it into a causal convolution with the kernel

    K = (C B_bar, C A_bar B_bar, C A_bar^2 B_bar, ...),     y = K * u + D u.

That is the whole trick of this family: train with the convolution (one FFT over the sequence,
parallel), decode with the recurrence (O(1) per token). What the models differ in is A:

    hippo_legs / nplr_legs   HiPPO-LegS, the matrix whose state optimally remembers the past
                             as Legendre coefficients ("HiPPO", Gu et al., 2020, arXiv:2008.07669),
                             and its normal-plus-low-rank form A = V (Lambda - p p*) V* (S4)
    s4d_init                 S4D's diagonal A: S4D-Lin and S4D-Inv (Gu et al., 2022, arXiv:2206.11893)
    discretize_zoh           zero-order hold for a diagonal A (S4D, S5)
    discretize_bilinear      the bilinear (Tustin) transform for a dense A (S4)
    vandermonde_kernel       K for a diagonal A: a Vandermonde product, sum_n c_n exp(dt A_n)^l
    krylov                   A^l b for l < L by repeated squaring (the dense / DPLR kernel)
    fft_causal_conv          y = K * u in O(T log T): zero-pad both to 2T so the circular FFT
                             convolution does not wrap the end of the sequence onto its start
    DiagonalSSM              an S4D layer (kernel, convolution and recurrent forms, a carried state),
                             shared by s4d, h3 and gss
    SSMGLUMixer              the S4 repository's token mixer around any such SSM (S4's and S4D's)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.causal_lm import check_sequence
from bestiary.layers.scan import scan_sequential
from bestiary.layers.state import RecurrentState


# ----------------------------------------------------------------------------------------- HiPPO
def hippo_legs(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The HiPPO-LegS matrices (float64): A (N, N), B (N,).

    A_nk = -sqrt(2n+1) sqrt(2k+1) for n > k, -(n+1) for n = k, 0 above the diagonal; B_n = sqrt(2n+1)."""
    q = torch.sqrt(2 * torch.arange(n, dtype=torch.float64) + 1)  # (N,)
    A = -torch.tril(q[:, None] * q[None, :], diagonal=-1) - torch.diag(torch.arange(1, n + 1).double())
    return A, q.clone()


def nplr_legs(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HiPPO-LegS as normal plus low rank: A = V diag(Lambda) V* - P P^T (S4, section 3.1).

    Adding P P^T with P_n = sqrt(n + 1/2) makes A "-1/2 I + skew-symmetric": a normal matrix, which a
    unitary V diagonalises. Its eigenvalues Lambda all have real part -1/2 (S5 and S4D start from
    these "HiPPO-N" eigenvalues). Returns Lambda (N,) complex, V (N, N) complex unitary, P (N,) and
    B (N,) real, all in float64 / complex128."""
    A, B = hippo_legs(n)
    P = torch.sqrt(torch.arange(n, dtype=torch.float64) + 0.5)  # (N,)
    normal = A + P[:, None] * P[None, :]  # -1/2 I + S with S skew-symmetric
    skew = normal + 0.5 * torch.eye(n, dtype=torch.float64)
    # S is skew-symmetric, so S / i is Hermitian: eigh gives real eigenvalues and a unitary V
    imag, V = torch.linalg.eigh(skew.to(torch.complex128) * -1j)
    Lambda = -0.5 + 1j * imag
    return Lambda, V, P, B


def s4d_init(n_modes: int, kind: str) -> torch.Tensor:
    """S4D's diagonal A (complex128, one of each conjugate pair, the other implied):

    'lin': A_n = -1/2 + i pi n               (S4D-Lin: imaginary parts spaced like Fourier frequencies)
    'inv': A_n = -1/2 + i N/pi (N/(2n+1) - 1)  (S4D-Inv: close to the eigenvalues of HiPPO-LegS)
    with N = 2 * n_modes the full (real) state size."""
    n = torch.arange(n_modes, dtype=torch.float64)
    if kind == "lin":
        imag = math.pi * n
    elif kind == "inv":
        full = 2 * n_modes
        imag = full / math.pi * (full / (2 * n + 1) - 1)
    else:
        raise ValueError(f"unknown S4D initialisation {kind!r}; choose 'lin' or 'inv'")
    return torch.complex(torch.full_like(n, -0.5), imag)


# -------------------------------------------------------------------------------- discretisation
def discretize_zoh(dtA: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-order hold for a diagonal A (u held constant over each step), given dt * A:

    A_bar = exp(dt A),   B_bar = (exp(dt A) - 1) / A * B = (A_bar - 1) / (dt A) * dt B.
    Returns (A_bar, the factor (A_bar - 1) / (dt A) that multiplies dt B)."""
    A_bar = torch.exp(dtA)
    return A_bar, (A_bar - 1) / dtA


def discretize_bilinear(
    A: torch.Tensor, B: torch.Tensor, dt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bilinear transform for a dense A (N, N), B (H, N) and steps dt (H,):

    A_bar = (I - dt/2 A)^-1 (I + dt/2 A),   B_bar = (I - dt/2 A)^-1 dt B.     -> (H, N, N), (H, N)"""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    half = (dt / 2).to(A.dtype)[:, None, None] * A  # (H, N, N)
    backward = eye - half  # (H, N, N)
    A_bar = torch.linalg.solve(backward, eye + half)
    B_bar = torch.linalg.solve(backward, dt.to(A.dtype)[:, None] * B)
    return A_bar, B_bar


# ------------------------------------------------------------------------------------- kernels
def vandermonde_kernel(coefficients: torch.Tensor, dtA: torch.Tensor, length: int) -> torch.Tensor:
    """K_l = 2 Re(sum_n c_n exp(dt A_n)^l), l < length, for a diagonal A kept one per conjugate pair.

    coefficients: (H, N) complex, C * B_bar. dtA: (H, N) complex. Returns K (H, length), real.
    The powers exp(dt A)^l are computed as exp(l dt A): a Vandermonde matrix, no repeated products."""
    positions = torch.arange(length, device=dtA.device, dtype=dtA.real.dtype)
    vandermonde = torch.exp(dtA[..., None] * positions)  # (H, N, L)
    # the conjugate half of the state contributes the complex conjugate: together twice the real part
    return 2 * torch.einsum("hn,hnl->hl", coefficients, vandermonde).real


def krylov(A: torch.Tensor, b: torch.Tensor, length: int) -> torch.Tensor:
    """The Krylov sequence (b, A b, A^2 b, ..., A^(L-1) b) by repeated squaring.

    A: (H, N, N), b: (..., H, N). Returns (..., H, L, N). Each round applies A^(2^k) to every vector
    computed so far, doubling their number: log2(L) matrix products instead of L."""
    vectors = b.unsqueeze(-2)  # (..., H, 1, N): A^0 b
    power = A  # A^(2^k)
    while vectors.shape[-2] < length:
        vectors = torch.cat([vectors, torch.einsum("hij,...hlj->...hli", power, vectors)], dim=-2)
        power = power @ power
    return vectors[..., :length, :]


def fft_causal_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """y_t = sum_{s <= t} K_{t-s} u_s for each channel, with FFTs. u: (B, T, H), kernel: (H, L>=T).

    The FFT computes a *circular* convolution; padding both signals to 2T zeros makes the wrapped-around
    terms land in positions >= T, which are cut off, so position t only sees positions <= t."""
    T = u.shape[1]
    n = 2 * T
    u_f = torch.fft.rfft(u.transpose(1, 2), n=n)  # (B, H, T + 1)
    k_f = torch.fft.rfft(kernel[..., :T], n=n)  # (H, T + 1)
    return torch.fft.irfft(u_f * k_f, n=n)[..., :T].transpose(1, 2)  # (B, T, H)


def direct_causal_conv(u: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """The same convolution as a T x T lower-triangular (Toeplitz) matrix product: O(T^2), the definition.
    u: (B, T, H), kernel: (H, L>=T) -> (B, T, H)."""
    T = u.shape[1]
    steps = torch.arange(T, device=u.device)
    lags = steps[:, None] - steps[None, :]  # (T, T): t - s
    toeplitz = kernel[:, lags.clamp(min=0)] * (lags >= 0).to(kernel.dtype)  # (H, T, T)
    return torch.einsum("hts,bsh->bth", toeplitz, u)


# ------------------------------------------------------------------------------- the S4D layer
class DiagonalSSM(nn.Module):
    """H independent single-input single-output SSMs with diagonal complex A (S4D).

    Per channel h: N/2 complex modes A_n (their conjugates implied), a step dt_h (learned in log
    space, initialised log-uniform in [dt_min, dt_max]), C_n complex (B fixed to 1 and folded into C,
    as in S4D's minimal implementation) and a skip D_h. ZOH discretisation.

    forward(u, h0) -> (y, h_last): u (B, T, H) real, h0 (B, H, N/2) complex or None (zeros).
    mode 'convolution': y = K * u + D u by FFT, plus the decaying response to h0; the new state
    from a Vandermonde sum. mode 'recurrent': the scan h_t = A_bar h_{t-1} + B_bar u_t. Equal.
    """

    def __init__(
        self, channels: int, d_state: int, *, init: str = "lin", dt_min: float = 1e-3, dt_max: float = 1e-1
    ):
        super().__init__()
        if d_state % 2:
            raise ValueError(f"d_state={d_state} must be even: the state is N/2 conjugate pairs")
        modes = d_state // 2
        A = s4d_init(modes, init).expand(channels, modes)  # (H, N/2)
        # A = -exp(log_neg_real) + i imag: the real part stays negative (a stable, decaying state)
        self.log_neg_real = nn.Parameter(torch.log(-A.real).float().clone())
        self.imag = nn.Parameter(A.imag.float().clone())
        # C ~ CN(0, 1), stored as (real, imag) pairs so every parameter is a real tensor
        self.C = nn.Parameter(torch.randn(channels, modes, 2) * math.sqrt(0.5))
        self.D = nn.Parameter(torch.randn(channels))
        log_dt = torch.rand(channels) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
        self.log_dt = nn.Parameter(log_dt)

    def discretize(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dt A, A_bar, B_bar, C), each (H, N/2) complex."""
        A = torch.complex(-torch.exp(self.log_neg_real), self.imag)  # (H, N/2)
        dt = torch.exp(self.log_dt)[:, None]  # (H, 1)
        A_bar, factor = discretize_zoh(dt * A)
        C = torch.view_as_complex(self.C.contiguous())  # (H, N/2)
        return dt * A, A_bar, factor * dt, C  # B = 1, so B_bar = factor * dt

    def kernel(self, length: int) -> torch.Tensor:
        """The convolution kernel K (H, length)."""
        dtA, _, B_bar, C = self.discretize()
        return vandermonde_kernel(C * B_bar, dtA, length)

    def forward(
        self, u: torch.Tensor, h0: torch.Tensor | None = None, *, mode: str = "convolution"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if mode == "recurrent":
            return self._recurrent(u, h0)
        dtA, _, B_bar, C = self.discretize()
        T = u.shape[1]
        y = fft_causal_conv(u, vandermonde_kernel(C * B_bar, dtA, T)) + self.D * u  # (B, T, H)
        steps = torch.arange(T + 1, device=u.device, dtype=u.dtype)
        powers = torch.exp(dtA[..., None] * steps)  # (H, N/2, T + 1): A_bar^0 .. A_bar^T
        # the state after the chunk: h_T = A_bar^T h0 + sum_s A_bar^(T-1-s) B_bar u_s
        h_last = torch.einsum("hnt,bth->bhn", powers[..., :T].flip(-1), u.to(powers.dtype)) * B_bar
        if h0 is not None:
            # the state left by earlier positions keeps ringing: y_t += 2 Re(C A_bar^(t+1) h0)
            y = y + 2 * torch.einsum("hn,bhn,hnt->bth", C, h0, powers[..., 1:]).real
            h_last = h_last + powers[..., T] * h0
        return y, h_last

    def _recurrent(self, u: torch.Tensor, h0: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        _, A_bar, B_bar, C = self.discretize()
        a = A_bar.expand(u.shape[0], u.shape[1], *A_bar.shape)  # (B, T, H, N/2)
        b = B_bar * u[..., None]  # (B, T, H, N/2)
        h = scan_sequential(a, b, h0)  # (B, T, H, N/2)
        y = 2 * torch.einsum("hn,bthn->bth", C, h).real + self.D * u
        return y, h[:, -1]


class GLUOutput(nn.Module):
    """The output stage of an S4 layer (the S4 repository's block): GELU, then a Linear to 2H
    channels and a GLU, a gated mix across channels (the SSM itself mixes only along time)."""

    def __init__(self, channels: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(channels, 2 * channels)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.glu(self.proj(self.dropout(F.gelu(y))), dim=-1)


class SSMGLUMixer(nn.Module):
    """x (B, T, D) -> an SSM along time, per channel -> GELU -> GLU across channels -> (B, T, D): the
    S4 repository's layer, the token mixer of S4 (a DPLR SSM) and S4D (a `DiagonalSSM`).

    ssm: forward(u (B, T, D), h0 or None, mode=...) -> (y (B, T, D), the state after the last
    position). cache: a RecurrentState holding "h", that state."""

    def __init__(self, d_model: int, ssm: nn.Module, mode: str, dropout: float = 0.0):
        super().__init__()
        self.d_model, self.mode = d_model, mode
        self.ssm = ssm
        self.output = GLUOutput(d_model, dropout)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is None:
            y, _ = self.ssm(x, mode=self.mode)
            return self.output(y)
        cache.check(self, x)
        mode = "recurrent" if x.shape[1] == 1 else self.mode  # one token: one recurrence step
        y, cache["h"] = self.ssm(x, cache["h"], mode=mode)
        cache.length += x.shape[1]
        return self.output(y)
