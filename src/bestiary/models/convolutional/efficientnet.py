"""EfficientNet: MBConv blocks with squeeze-excite, scaled up by one compound coefficient.

Paper: "EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks" (Tan & Le, 2019,
arXiv:1905.11946).

The paper's point is *compound scaling*: instead of making a network only deeper, only wider or
only fed bigger images, scale all three together: depth by alpha^phi, width by beta^phi and
resolution by gamma^phi (alpha = 1.2, beta = 1.1, gamma = 1.15 from a small grid search on B0).
B1..B7 are phi = 1..7, with the multipliers rounded as in the reference implementation:
`width_mult`, `depth_mult` and `image_size` below.

Blocks are MBConv (`bestiary.layers.conv_blocks.InvertedResidual`) with SiLU ("swish"),
squeeze-excite at 1/4 of the block input's channels, and stochastic depth growing linearly with
the block index. The presets match torchvision's efficientnet_b0..b7 exactly (b7 also equals
transformers' default EfficientNetConfig).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.conv_blocks import ConvNormAct, InvertedResidual, make_divisible
from bestiary.layers.patch_embed import check_image
from bestiary.registry import Preset, register

# B0, the paper's Table 1: (expand ratio, kernel, first stride, in channels, out channels, repeats)
B0_BLOCKS = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    num_classes: int = 10
    width_mult: float = 0.5  # channel multiplier (beta^phi)
    depth_mult: float = 0.5  # repeats multiplier (alpha^phi), rounded up per stage
    blocks: tuple[tuple[int, int, int, int, int, int], ...] = B0_BLOCKS
    dropout: float = 0.2  # before the classifier
    drop_path: float = 0.2  # stochastic depth of the last block
    image_size: int = 32  # the side of the default example input (B0 is trained at 224)


def _preset(width: float, depth: float, resolution: int, dropout: float, params: int, name: str) -> Preset:
    return Preset(
        dict(width_mult=width, depth_mult=depth, image_size=resolution, dropout=dropout, num_classes=1000),
        params=params,
        source=f"torchvision.models.{name} docs (num_params)",
    )


@register(
    "efficientnet",
    family="convolutional",
    config=Config,
    summary="EfficientNet: MBConv + squeeze-excite, with depth, width and resolution scaled together.",
    paper="EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
    year=2019,
    arxiv="1905.11946",
    input_kind="image",
    tiny=dict(width_mult=0.25, depth_mult=0.25, blocks=B0_BLOCKS[:3], image_size=16),
    presets={
        "efficientnet_b0": _preset(1.0, 1.0, 224, 0.2, 5_288_548, "efficientnet_b0"),
        "efficientnet_b1": _preset(1.0, 1.1, 240, 0.2, 7_794_184, "efficientnet_b1"),
        "efficientnet_b2": _preset(1.1, 1.2, 260, 0.3, 9_109_994, "efficientnet_b2"),
        "efficientnet_b3": _preset(1.2, 1.4, 300, 0.3, 12_233_232, "efficientnet_b3"),
        "efficientnet_b4": _preset(1.4, 1.8, 380, 0.4, 19_341_616, "efficientnet_b4"),
        "efficientnet_b5": _preset(1.6, 2.2, 456, 0.4, 30_389_784, "efficientnet_b5"),
        "efficientnet_b6": _preset(1.8, 2.6, 528, 0.5, 43_040_704, "efficientnet_b6"),
        "efficientnet_b7": _preset(2.0, 3.1, 600, 0.5, 66_347_960, "efficientnet_b7"),
    },
    outputs="logits (B, num_classes)",
)
class EfficientNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        c = config

        def width(channels: int) -> int:
            return make_divisible(channels * c.width_mult)

        def depth(repeats: int) -> int:
            return int(math.ceil(repeats * c.depth_mult))

        total = sum(depth(row[5]) for row in c.blocks)
        stem = width(c.blocks[0][3])
        layers: list[nn.Module] = [ConvNormAct(c.in_channels, stem, 3, stride=2, activation="silu")]
        index = 0
        for expand, kernel, stride, cin, cout, repeats in c.blocks:
            cin, cout = width(cin), width(cout)
            for i in range(depth(repeats)):
                block_in = cin if i == 0 else cout
                layers.append(
                    InvertedResidual(
                        block_in,
                        cout,
                        stride if i == 0 else 1,
                        expand,
                        kernel_size=kernel,
                        activation="silu",
                        se_channels=max(1, block_in // 4),  # SE width: a quarter of the block *input*
                        drop_path=c.drop_path * index / total,
                    )
                )
                index += 1
        last_in = width(c.blocks[-1][4])
        layers.append(ConvNormAct(last_in, 4 * last_in, 1, activation="silu"))
        self.features = nn.Sequential(*layers)
        self.num_features = 4 * last_in
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(4 * last_in, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last feature map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels)
        return self.features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, dropout, Linear."""
        return self.head(self.dropout(features.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
