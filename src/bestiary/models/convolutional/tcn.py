"""Temporal Convolutional Network: stacked causal, dilated 1-D convolutions with residuals.

Paper: "An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence
Modeling" (Bai, Kolter & Koltun, 2018, arXiv:1803.01271). Dilated causal convolutions come from
WaveNet (van den Oord et al., 2016, arXiv:1609.03499).

Causal: the output at time t depends only on inputs at times <= t (pad on the left only).
Dilated: level i skips 2^i - 1 inputs between kernel taps, so the receptive field grows
exponentially with depth: 1 + 2 (k - 1) (2^L - 1) steps for L levels of two convs each.
Each residual block is two (weight-normalised) causal convs with ReLU and dropout, plus a 1x1
conv on the shortcut when the width changes.

Sequence model: (B, T, in_dim) -> (B, T, d_model); `out_dim` = d_model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from bestiary.layers.checks import check_shape
from bestiary.registry import register


@dataclass
class Config:
    in_dim: int = 8
    d_model: int = 64  # channels of every level
    n_layers: int = 4  # levels; level i has dilation 2^i
    kernel_size: int = 3
    dropout: float = 0.0
    use_weight_norm: bool = True  # the paper's choice; set False for plain convs


class CausalConv1d(nn.Module):
    """Conv1d that pads (k - 1) * dilation zeros on the left only: no peeking at the future."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, dilation: int, use_weight_norm: bool
    ):
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.conv = weight_norm(conv) if use_weight_norm else conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (self.left_pad, 0)))  # (B, C_out, T)


class TemporalBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, config: Config, dilation: int):
        super().__init__()
        k, wn = config.kernel_size, config.use_weight_norm
        self.conv1 = CausalConv1d(in_channels, channels, k, dilation, wn)
        self.conv2 = CausalConv1d(channels, channels, k, dilation, wn)
        self.dropout = nn.Dropout(config.dropout)
        self.shortcut = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dropout(F.relu(self.conv1(x)))
        out = self.dropout(F.relu(self.conv2(out)))
        return F.relu(out + self.shortcut(x))


@register(
    "tcn",
    family="convolutional",
    config=Config,
    summary="Temporal Convolutional Network: causal dilated 1-D convs with residual blocks.",
    paper="An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling",
    year=2018,
    arxiv="1803.01271",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=8, n_layers=2, kernel_size=2),
    outputs="features (B, T, d_model)",
)
class TCN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.out_dim = config.d_model
        self.blocks = nn.Sequential(
            *[
                TemporalBlock(config.in_dim if i == 0 else config.d_model, config.d_model, config, 2**i)
                for i in range(config.n_layers)
            ]
        )

    @property
    def receptive_field(self) -> int:
        """How many past steps (including the current one) one output can see."""
        c = self.config
        return 1 + 2 * (c.kernel_size - 1) * (2**c.n_layers - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        x = self.blocks(x.transpose(1, 2))  # convs want channels first: (B, d_model, T)
        return x.transpose(1, 2)  # (B, T, d_model)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, 12, config.in_dim)
