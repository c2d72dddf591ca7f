"""A small convolutional network built from the basic blocks: Conv1d/Conv2d -> BatchNorm -> ReLU -> pool.

Papers: the convolutional network of "Gradient-based learning applied to document recognition"
(LeCun, Bottou, Bengio & Haffner, 1998, Proc. IEEE; LeNet-5), with BatchNorm from "Batch
Normalization: Accelerating Deep Network Training by Reducing Internal Covariate Shift" (Ioffe &
Szegedy, 2015, arXiv:1502.03167).

One file, two dimensionalities: `spatial_dims=1` runs over signals (B, C, L) — audio, sensor
traces, DNA — and `spatial_dims=2` over images (B, C, H, W). The maths is the same: a learned
kernel slides over the input and computes a dot product at every position (a cross-correlation),
so the same detector is applied everywhere (translation equivariance) with few parameters. Each
block doubles as a teaching unit: conv (local features) -> norm (stable scale) -> ReLU (non-
linearity) -> max-pool (halve the resolution, a little translation invariance). A global average
pool and a Linear layer turn the last feature map into class logits.

Input kind is "custom" because the shape depends on `spatial_dims`: (B, in_channels, L) or
(B, in_channels, H, W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.options import option
from bestiary.registry import register

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_POOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}


@dataclass(kw_only=True)
class Config:
    spatial_dims: int = option(1, choices=(1, 2))  # 1: signals (B, C, L); 2: images (B, C, H, W)
    in_channels: int = 1
    num_classes: int = 10
    dims: tuple[int, ...] = (16, 32, 64)  # channels of each conv block
    kernel_size: int = 3
    dropout: float = 0.0
    image_size: int = 64  # length (1-D) or side (2-D) of the example input


class ConvBlock(nn.Sequential):
    """ConvNd (same padding, no bias: BN shifts anyway) -> BatchNormNd -> ReLU -> MaxPoolNd(2)."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int):
        super().__init__(
            _CONV[spatial_dims](in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
            _NORM[spatial_dims](out_channels),
            nn.ReLU(),
            _POOL[spatial_dims](2),
        )


@register(
    "conv1d",
    family="convolutional",
    config=Config,
    summary="A small CNN from Conv1d/Conv2d + BatchNorm + ReLU + max-pool blocks, for signals or images.",
    paper="Gradient-based learning applied to document recognition",
    year=1998,
    arxiv=None,
    input_kind="custom",
    tiny=dict(dims=(4, 8), image_size=16),
    outputs="logits (B, num_classes)",
)
class ConvNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 or 2, got {config.spatial_dims}")
        if config.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd (for 'same' padding), got {config.kernel_size}")
        self.config = config
        blocks = []
        channels = config.in_channels
        for width in config.dims:
            blocks.append(ConvBlock(config.spatial_dims, channels, width, config.kernel_size))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(channels, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, L) or (B, C, H, W) -> the last feature map, globally average-pooled: (B, num_features).
        (Pooled, so that signals and images give features of one layout.)"""
        c = self.config
        pattern = "B C L" if c.spatial_dims == 1 else "B C H W"
        check_shape(x, pattern, name="input", C=c.in_channels)
        if min(x.shape[2:]) < 2 ** len(c.dims):
            raise ValueError(
                f"input spatial size {tuple(x.shape[2:])} is too small for {len(c.dims)} pooling "
                f"layers: need at least {2 ** len(c.dims)}"
            )
        x = self.blocks(x)  # (B, C_last, L / 2^n) or (B, C_last, H / 2^n, W / 2^n), n = len(dims)
        return x.flatten(2).mean(dim=2)  # global average pool: (B, C_last)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features) -> logits (B, num_classes): dropout, then Linear."""
        return self.head(self.dropout(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        spatial = (config.image_size,) * config.spatial_dims
        return torch.randn(batch, config.in_channels, *spatial)
