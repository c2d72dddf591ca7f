"""The Real-Gated Linear Recurrent Unit (RG-LRU) and Griffin's recurrent block.

Paper: "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language
Models" (De et al., 2024, arXiv:2402.19427), Sec. 2.4. The RG-LRU is a diagonal linear recurrence
whose decay depends on the input, like Mamba's, but with one gate instead of a state-space
discretisation:

    r_t = sigmoid(W_a x_t + b_a)                       recurrence gate
    i_t = sigmoid(W_x x_t + b_x)                       input gate
    a_t = a^(c r_t),  a = sigmoid(Λ) per channel,  c = 8
    h_t = a_t * h_{t-1} + sqrt(1 - a_t^2) * (i_t * x_t)

log a_t = -c r_t softplus(-Λ) is computed in log space (a^(c r_t) underflows otherwise). The
sqrt(1 - a_t^2) factor keeps h's variance near x's whatever the decay: a slow channel (a_t -> 1)
lets little new input in. a is initialised so that a^c lies in [0.9^c, 0.999^c]: long memories
from the start. The gates are block-diagonal (one small matrix per head), as in the paper.

The recurrent block around it (Fig. 2): two branches of width `lru_width`,
    y = GeLU(W_y x)                      the gate branch
    x' = RG-LRU(Conv1D(W_x x))           a short causal depthwise conv, then the recurrence
    out = W_out(x' * y)

Like the reference implementation (and `transformers`' RecurrentGemma), the first position of a
sequence is not scaled by sqrt(1 - a_0^2): there is no past to make room for.
Decoding keeps (the last conv_width - 1 inputs of the conv, h): a constant-size state.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.causal_lm import check_sequence
from bestiary.layers.scan import scan_hillis_steele, scan_sequential
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.state import RecurrentState

SCANS = {"sequential": scan_sequential, "hillis_steele": scan_hillis_steele}


class BlockDiagonalLinear(nn.Module):
    """n_heads independent (width/n_heads x width/n_heads) linear maps: x (..., W) -> (..., W)."""

    def __init__(self, width: int, n_heads: int):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"lru_width={width} must be divisible by n_heads={n_heads}")
        self.n_heads, self.block = n_heads, width // n_heads
        self.weight = nn.Parameter(torch.empty(n_heads, self.block, self.block))
        self.bias = nn.Parameter(torch.zeros(n_heads, self.block))
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.normal_(self.weight, std=self.block**-0.5)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        heads = x.unflatten(-1, (self.n_heads, self.block))  # (..., H, W/H)
        out = torch.einsum("...hi,hij->...hj", heads, self.weight) + self.bias
        return out.flatten(-2)  # (..., W)


class RGLRU(nn.Module):
    """x (B, T, W) -> h (B, T, W). `start`: the absolute position of x[:, 0]; h0: the state before it."""

    def __init__(self, width: int, n_heads: int, *, c: float = 8.0, scan: str = "hillis_steele"):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {tuple(SCANS)}, got {scan!r}")
        self.c, self.scan = c, scan
        self.input_gate = BlockDiagonalLinear(width, n_heads)
        self.recurrent_gate = BlockDiagonalLinear(width, n_heads)
        # softplus(a_param) = -log a: a = exp(-softplus(a_param)) in (0, 1) whatever the parameter
        self.a_param = nn.Parameter(torch.empty(width))
        self.init_weights()

    def init_weights(self) -> None:
        # a^2 ~ U(0.9^2, 0.999^2), stored so that softplus(a_param) = -log a
        a = torch.empty_like(self.a_param).uniform_(0.9**2, 0.999**2).sqrt()
        with torch.no_grad():
            self.a_param.copy_(torch.log(1 / a - 1))

    def forward(self, x: torch.Tensor, start: int = 0, h0: torch.Tensor | None = None) -> torch.Tensor:
        input_gate = torch.sigmoid(self.input_gate(x))
        log_a = -self.c * torch.sigmoid(self.recurrent_gate(x)) * F.softplus(self.a_param)  # (B, T, W)
        a = torch.exp(log_a)
        multiplier = torch.sqrt(1 - torch.exp(2 * log_a))
        if start == 0:  # position 0 has no past: its input enters unscaled
            multiplier = torch.cat([torch.ones_like(multiplier[:, :1]), multiplier[:, 1:]], dim=1)
        b = multiplier * input_gate * x  # (B, T, W)
        return SCANS[self.scan](a, b, h0)


class RecurrentBlock(nn.Module):
    """Griffin's temporal mixer: gelu(W_y x) * RG-LRU(conv(W_x x)), projected back to d_model."""

    def __init__(
        self, d_model: int, *, lru_width: int, n_heads: int, conv_width: int = 4, scan: str = "hillis_steele"
    ):
        super().__init__()
        self.d_model = d_model
        self.linear_y = nn.Linear(d_model, lru_width)
        self.linear_x = nn.Linear(d_model, lru_width)
        self.conv = CausalDepthwiseConv(lru_width, conv_width)
        self.rg_lru = RGLRU(lru_width, n_heads, scan=scan)
        self.linear_out = nn.Linear(lru_width, d_model)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "h"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        y = F.gelu(self.linear_y(x), approximate="tanh")  # (B, T, W)
        conv_out, conv_past = self.conv(
            self.linear_x(x), None if cache is None else cache["conv"]
        )  # (B, T, W)
        start = 0 if cache is None else cache.length
        h = self.rg_lru(conv_out, start, None if cache is None else cache["h"])  # (B, T, W)
        if cache is not None:
            cache["conv"] = conv_past
            cache["h"] = h[:, -1]
            cache.length += T
        return self.linear_out(h * y)
