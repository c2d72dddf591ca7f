"""MobileNetV2: inverted residual blocks with linear bottlenecks, built from depthwise convolutions.

Paper: "MobileNetV2: Inverted Residuals and Linear Bottlenecks" (Sandler, Howard, Zhu, Zhmoginov &
Chen, 2018, arXiv:1801.04381).

A depthwise 3x3 conv filters each channel separately (cost ~ C * 9 per pixel instead of C^2 * 9)
and a 1x1 conv mixes channels: together a "depthwise-separable" conv, 8-9x cheaper than a full one.
The block (`bestiary.layers.conv_blocks.InvertedResidual`) expands a thin input by t = 6, filters
depthwise, and projects back down linearly; the residual joins the thin ends.

The preset matches torchvision's mobilenet_v2 exactly (3,504,872 parameters); `width_mult`
reproduces the paper's width-multiplier family.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.conv_blocks import ConvNormAct, InvertedResidual, make_divisible
from bestiary.layers.patch_embed import check_image
from bestiary.options import option
from bestiary.registry import Preset, register

# the paper's Table 2: expansion t, output channels c, repeats n, first stride s
PAPER_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    num_classes: int = 10
    width_mult: float = 0.5  # scales every channel count (rounded to multiples of 8)
    blocks: tuple[tuple[int, int, int, int], ...] = PAPER_BLOCKS  # (t, c, n, s) rows
    d_model: int = 32  # stem channels (before width_mult)
    last_channel: int = option(1280, min=1)  # width of the final 1x1 conv (never shrunk by width_mult < 1)
    dropout: float = 0.2
    image_size: int = 32  # the side of the default example input


@register(
    "mobilenet",
    family="convolutional",
    config=Config,
    summary="MobileNetV2: depthwise-separable inverted residual blocks for cheap, accurate CNNs.",
    paper="MobileNetV2: Inverted Residuals and Linear Bottlenecks",
    year=2018,
    arxiv="1801.04381",
    input_kind="image",
    tiny=dict(
        width_mult=0.25, blocks=((1, 8, 1, 1), (6, 16, 2, 2)), d_model=8, last_channel=32, image_size=16
    ),
    presets={
        "mobilenet_v2": Preset(
            dict(width_mult=1.0, num_classes=1000, image_size=224),
            params=3_504_872,
            source="torchvision.models.mobilenet_v2 docs (num_params)",
        ),
    },
    outputs="logits (B, num_classes)",
)
class MobileNetV2(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        c = config
        channels = make_divisible(c.d_model * c.width_mult)
        last = make_divisible(c.last_channel * max(1.0, c.width_mult))
        layers: list[nn.Module] = [ConvNormAct(c.in_channels, channels, 3, stride=2, activation="relu6")]
        for t, out, n, s in c.blocks:
            out = make_divisible(out * c.width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t, activation="relu6"))
                channels = out
        layers.append(ConvNormAct(channels, last, 1, activation="relu6"))
        self.features = nn.Sequential(*layers)
        self.num_features = last
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(last, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last feature map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels)
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, dropout, Linear."""
        return self.head(self.dropout(features.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
