"""The short causal depthwise convolution that most sequence mixers put before their recurrence.

Mamba's conv, Hyena's short filters, H3, minGRU's optional local mixing, xLSTM's conv before the
mLSTM, the delta-rule layers' conv on q/k/v and GLA v2's conv on values are all the same thing:
each channel mixes its own last `kernel_size` inputs, y_t = sum_j w_j x_{t-j} (+ b), nothing from
the future. Decoding keeps the last kernel_size - 1 inputs, so the convolution continues across
calls exactly as if the sequence had been read whole.
"""

from __future__ import annotations

import torch
from torch import nn


class CausalDepthwiseConv(nn.Module):
    """x (B, T, C) -> (B, T, C), continuing from `past`, the last kernel_size - 1 inputs.

    forward(x, past) returns (y, new past): past None means nothing read yet (zeros, the causal
    left padding). Weight (C, 1, K), the layout of a grouped nn.Conv1d (so checkpoints map)."""

    def __init__(self, channels: int, kernel_size: int, *, bias: bool = True):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=bias)

    def forward(self, x: torch.Tensor, past: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        B, _, C = x.shape
        if past is None:
            past = x.new_zeros(B, self.kernel_size - 1, C)
        padded = torch.cat([past, x], dim=1)  # (B, K - 1 + T, C): the left padding is the past
        y = self.conv(padded.transpose(1, 2)).transpose(1, 2)  # (B, T, C)
        return y, padded[:, padded.shape[1] - (self.kernel_size - 1) :]  # (B, K - 1, C)
