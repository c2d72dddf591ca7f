"""The Hyena operator: gated long convolutions, with the filters of Hyena, StripedHyena and StripedHyena 2.

"Hyena Hierarchy: Towards Larger Convolutional Language Models" (Poli et al., 2023, arXiv:2302.10866)
replaces attention by an order-N recurrence of elementwise gates and long causal convolutions:

    x_0, ..., x_{N-1}, v = short_conv(Linear(u))         N + 1 projections, each through a short
                                                          causal depthwise conv (kernel 3)
    z = v;  z = h_n * (x_n ⊙ z) + D_n (x_n ⊙ z)  for n = N-1 .. 1    (long convolutions, by FFT)
    y = Linear(x_0 ⊙ z)

Order 2 is y = q ⊙ (h * (k ⊙ v)): H3 with its SSM replaced by a free long filter. What fills the
filter h decides the model and how it decodes:

  ImplicitFilter  Hyena's: h_t = FFN(positional features of t) * exp(-|alpha_c| t). As long as the
                  sequence; decoding re-runs the convolution over the cached inputs (the cache grows
                  with the text, like attention's KV cache, up to max_seq_len).
  ExplicitFilter  StripedHyena 2's Hyena-SE (a short free filter, ~7 taps) and Hyena-MR (a medium
                  filter, ~128 taps, times a learned exponential decay that regularises it); the
                  cache is the last (length - 1) inputs: fixed size.
  ModalFilter     StripedHyena's long filter in modal form, h_t = sum_m R_m lambda_m^t (Hyena-LI in
                  StripedHyena 2): a diagonal SSM, so it decodes with a fixed-size state (B, C, M).

Every filter maps (u (B, T, C), its state) -> (h * u (B, T, C), the new state), so the operator
treats them alike. A filter's state is None before the first call.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bestiary.layers.causal_lm import check_sequence
from bestiary.layers.scan import scan_sequential
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.ssm_kernels import fft_causal_conv
from bestiary.layers.state import RecurrentState


def _conv_with_past(u: torch.Tensor, kernel: torch.Tensor, past: torch.Tensor | None) -> torch.Tensor:
    """h * u for the new positions u (B, T, C), continuing after the inputs `past` (B, S, C)."""
    if past is None:
        return fft_causal_conv(u, kernel)
    full = torch.cat([past, u], dim=1)  # (B, S + T, C)
    return fft_causal_conv(full, kernel)[:, past.shape[1] :]


class Sine(nn.Module):
    """sin(w x) with a learned frequency per unit: the activation that lets a small FFN draw
    filters with high-frequency detail (as in SIREN)."""

    def __init__(self, width: int, frequency: float = 1.0):
        super().__init__()
        self.frequency = nn.Parameter(torch.full((width,), frequency))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.frequency * x)


class ImplicitFilter(nn.Module):
    """Hyena's implicit long filter for `channels` channels, defined for positions < max_len.

    h_t = FFN(z_t) * exp(-|alpha_c| t / max_len), z_t = (t / max_len, cos(2 pi f_k t / max_len),
    sin(...)) for pos_dim // 2 frequencies f_k. The FFN is Linear -> Sine -> Linear -> Sine -> Linear.
    Positions are measured against max_len (not the current length), so a filter tap is the same
    whatever the length of the sequence: needed for decoding piece by piece.
    alpha_c runs from fast to slow decay across channels (Hyena's `ExponentialModulation`).
    """

    def __init__(self, channels: int, max_len: int, d_filter: int = 64, pos_dim: int = 5):
        super().__init__()
        self.max_len = max_len
        t = torch.arange(max_len, dtype=torch.float32) / max_len  # (L,) in [0, 1)
        bands = (pos_dim - 1) // 2
        frequencies = torch.linspace(1e-4, bands - 1, bands) if bands > 1 else torch.full((bands,), 1e-4)
        angles = 2 * math.pi * t[:, None] * frequencies  # (L, bands)
        self.register_buffer("features", torch.cat([t[:, None], angles.cos(), angles.sin()], -1), False)
        self.ffn = nn.Sequential(
            nn.Linear(2 * bands + 1, d_filter),
            Sine(d_filter),
            nn.Linear(d_filter, d_filter),
            Sine(d_filter),
            nn.Linear(d_filter, channels, bias=False),
        )
        # decay to 1% by 30% of max_len (fast channels) ... by 150% (slow ones), Hyena's defaults
        target = math.log(1e-2)
        self.register_buffer("decay", torch.linspace(target / 1.5, target / 0.3, channels).abs(), False)
        self.register_buffer("t", t, False)

    def kernel(self, length: int) -> torch.Tensor:
        """(channels, length)."""
        if length > self.max_len:
            raise ValueError(
                f"Hyena's implicit filter is defined up to max_seq_len={self.max_len}, got {length}"
            )
        h = self.ffn(self.features[:length])  # (length, C)
        window = torch.exp(-self.t[:length, None] * self.decay)  # (length, C)
        return (h * window).T

    def forward(self, u: torch.Tensor, history: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The state is every input so far (B, S, C): it grows by T per call."""
        seen = 0 if history is None else history.shape[1]
        y = _conv_with_past(u, self.kernel(seen + u.shape[1]), history)
        return y, u if history is None else torch.cat([history, u], dim=1)


class ExplicitFilter(nn.Module):
    """A free filter of `length` taps per channel (StripedHyena 2's Hyena-SE, and with `decay` its
    Hyena-MR: taps times exp(-r_c t / length), with a learned rate r_c per channel that pulls the far
    taps to zero). The state is the last length - 1 inputs (B, length - 1, C): fixed size."""

    def __init__(self, channels: int, length: int, decay: bool):
        super().__init__()
        self.length = length
        self.taps = nn.Parameter(torch.randn(channels, length) / math.sqrt(length))
        # rates from 1 to 10 over the channels: the slowest keeps e^-1 at the last tap
        self.log_rate = nn.Parameter(torch.linspace(0.0, math.log(10.0), channels)) if decay else None

    def kernel(self, length: int) -> torch.Tensor:
        """(channels, length): the taps, zero past the filter's own length."""
        taps = self.taps
        if self.log_rate is not None:
            t = torch.arange(self.length, device=taps.device, dtype=taps.dtype) / self.length
            taps = taps * torch.exp(-torch.exp(self.log_rate)[:, None] * t)
        if length <= self.length:
            return taps[:, :length]
        return torch.cat([taps, taps.new_zeros(taps.shape[0], length - self.length)], dim=1)

    def forward(self, u: torch.Tensor, past: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if past is None:
            past = u.new_zeros(u.shape[0], self.length - 1, u.shape[2])  # the causal zero padding
        full = torch.cat([past, u], dim=1)  # (B, length - 1 + T, C)
        y = fft_causal_conv(full, self.kernel(full.shape[1]))[:, past.shape[1] :]
        return y, full[:, full.shape[1] - (self.length - 1) :]


class ModalFilter(nn.Module):
    """h_t = sum_m R_{c,m} lambda_{c,m}^t with real poles 0 < lambda < 1 (lambda = exp(-exp(log_rate))):
    StripedHyena's modal long filter. It is the impulse response of a diagonal linear recurrence,
    s_t = lambda s_{t-1} + u_t, y_t = sum_m R_m s_t,m, whose state (B, C, M) is the decoding cache.
    Training uses the convolution (FFT); single tokens use the recurrence."""

    def __init__(self, channels: int, n_modes: int):
        super().__init__()
        # poles from a memory of ~1 step to ~1000 steps, the same spread in every channel
        rates = torch.logspace(0, -3, n_modes).expand(channels, n_modes)
        self.log_rate = nn.Parameter(torch.log(rates).clone())
        self.residues = nn.Parameter(torch.randn(channels, n_modes) / math.sqrt(n_modes))

    def poles(self) -> torch.Tensor:
        return torch.exp(-torch.exp(self.log_rate))  # (C, M)

    def kernel(self, length: int) -> torch.Tensor:
        """(channels, length)."""
        t = torch.arange(length, device=self.log_rate.device, dtype=self.log_rate.dtype)
        powers = torch.exp(-torch.exp(self.log_rate)[..., None] * t)  # (C, M, L): lambda^t
        return torch.einsum("cm,cml->cl", self.residues, powers)

    def forward(self, u: torch.Tensor, state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        poles = self.poles()  # (C, M)
        T = u.shape[1]
        if T == 1:  # one recurrence step
            a = poles.expand(u.shape[0], 1, *poles.shape)  # (B, 1, C, M)
            s = scan_sequential(a, u[..., None].expand_as(a), state)  # (B, 1, C, M)
            return torch.einsum("cm,btcm->btc", self.residues, s), s[:, -1]
        t = torch.arange(T + 1, device=u.device, dtype=u.dtype)
        powers = torch.exp(-torch.exp(self.log_rate)[..., None] * t)  # (C, M, T + 1)
        y = fft_causal_conv(u, torch.einsum("cm,cml->cl", self.residues, powers[..., :T]))
        # the new state: s_T = sum_s lambda^(T-1-s) u_s (+ lambda^T s_0)
        new_state = torch.einsum("cmt,btc->bcm", powers[..., :T].flip(-1), u)
        if state is not None:
            y = y + torch.einsum("cm,bcm,cmt->btc", self.residues, state, powers[..., 1:])
            new_state = new_state + powers[..., T] * state
        return y, new_state


class HyenaOperator(nn.Module):
    """The order-N Hyena token mixer (N = len(filters) + 1), x (B, T, D) -> (B, T, D).

    filters: N - 1 long filters (ImplicitFilter, ExplicitFilter or ModalFilter over D channels).
    cache: a RecurrentState with "short" (the short conv's last inputs) and "filter_n" (each
    filter's state; an ImplicitFilter's grows with the text, the others are fixed size)."""

    def __init__(self, d_model: int, filters: list[nn.Module], short_kernel: int = 3, dropout: float = 0.0):
        super().__init__()
        self.d_model, self.order = d_model, len(filters) + 1
        self.in_proj = nn.Linear(d_model, (self.order + 1) * d_model)
        self.short_conv = CausalDepthwiseConv((self.order + 1) * d_model, short_kernel)
        self.filters = nn.ModuleList(filters)
        self.skip = nn.Parameter(torch.randn(len(filters), d_model))  # D_n: each conv's skip term
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(d_model, d_model)

    def init_cache(self, batch: int) -> RecurrentState:
        names = ("short", *(f"filter_{n}" for n in range(len(self.filters))))
        return RecurrentState(self, batch, names)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        projections, short_past = self.short_conv(self.in_proj(x), None if cache is None else cache["short"])
        *gates, z = projections.split(self.d_model, dim=-1)  # order + 1 tensors (B, T, D): x_0..x_{N-1}, v
        for n, (gate, long_filter) in enumerate(zip(gates[:0:-1], self.filters)):  # x_{N-1} .. x_1
            z = self.dropout(gate * z)
            state = None if cache is None else cache[f"filter_{n}"]
            filtered, state = long_filter(z, state)
            z = filtered + self.skip[n] * z
            if cache is not None:
                cache[f"filter_{n}"] = state
        if cache is not None:
            cache["short"] = short_past
            cache.length += x.shape[1]
        return self.out_proj(gates[0] * z)
