"""DenseNet: every layer receives the feature maps of all preceding layers in its block.

Paper: "Densely Connected Convolutional Networks" (Huang, Liu, van der Maaten & Weinberger, 2016,
arXiv:1608.06993).

Inside a dense block, layer l sees concat(x_0, ..., x_{l-1}) and adds only `growth_rate` new
channels (k = 32 in DenseNet-121): features are reused instead of re-learned, so the layers can be
narrow. Each layer is BN-ReLU-Conv1x1 (a "bottleneck" to bn_size * k channels) then BN-ReLU-Conv3x3
(pre-activation order). Transition layers between blocks halve the channels (compression 0.5) and
the resolution.

Presets match torchvision's densenet121/161/169/201 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.patch_embed import check_image
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    num_classes: int = 10
    growth_rate: int = option(12, min=1)  # channels each layer adds (the paper's k)
    depths: tuple[int, ...] = (4, 4, 4)  # layers per dense block
    d_model: int = 24  # channels out of the stem (torchvision's num_init_features)
    bn_size: int = option(4, min=1)  # bottleneck width = bn_size * growth_rate
    dropout: float = 0.0
    stem: str = option(
        "cifar", choices=("imagenet", "cifar")
    )  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": one 3x3 conv
    image_size: int = 32  # the side of the default example input


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 -> BN-ReLU-Conv3x3: (B, C_in, H, W) -> (B, growth_rate, H, W) new features."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, dropout: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(F.relu(self.norm1(x)))
        return self.dropout(self.conv2(F.relu(self.norm2(x))))


class DenseBlock(nn.Module):
    def __init__(self, n_layers: int, in_channels: int, growth_rate: int, bn_size: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size, dropout) for i in range(n_layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))  # each layer sees all earlier maps
        return torch.cat(features, dim=1)  # (B, C_in + n_layers * k, H, W)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 (halve the channels) -> 2x2 average pool (halve the resolution)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2, stride=2),
        )


def _preset(growth: int, depths: tuple[int, ...], init: int, params: int, name: str) -> Preset:
    return Preset(
        dict(
            growth_rate=growth, depths=depths, d_model=init, stem="imagenet", num_classes=1000, image_size=224
        ),
        params=params,
        source=f"torchvision.models.{name} docs (num_params)",
    )


@register(
    "densenet",
    family="convolutional",
    config=Config,
    summary="DenseNet: each layer takes the concatenated features of every earlier layer in its block.",
    paper="Densely Connected Convolutional Networks",
    year=2016,
    arxiv="1608.06993",
    input_kind="image",
    tiny=dict(growth_rate=4, depths=(2, 2), d_model=8, bn_size=2, image_size=16),
    presets={
        "densenet121": _preset(32, (6, 12, 24, 16), 64, 7_978_856, "densenet121"),
        "densenet161": _preset(48, (6, 12, 36, 24), 96, 28_681_000, "densenet161"),
        "densenet169": _preset(32, (6, 12, 32, 32), 64, 14_149_480, "densenet169"),
        "densenet201": _preset(32, (6, 12, 48, 32), 64, 20_013_928, "densenet201"),
    },
    outputs="logits (B, num_classes)",
)
class DenseNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        c = config
        if c.stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(c.in_channels, c.d_model, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(c.d_model),
                nn.ReLU(),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        elif c.stem == "cifar":  # the paper's CIFAR variant: a single 3x3 conv, no downsampling
            self.stem = nn.Conv2d(c.in_channels, c.d_model, 3, padding=1, bias=False)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {c.stem!r}")
        blocks: list[nn.Module] = []
        channels = c.d_model
        for i, n_layers in enumerate(c.depths):
            blocks.append(DenseBlock(n_layers, channels, c.growth_rate, c.bn_size, c.dropout))
            channels += n_layers * c.growth_rate
            if i < len(c.depths) - 1:
                blocks.append(Transition(channels, channels // 2))  # compression 0.5
                channels //= 2
        self.blocks = nn.Sequential(*blocks)
        self.num_features = channels
        self.norm = nn.BatchNorm2d(channels)  # the blocks end pre-activation: one last BN-ReLU
        self.head = nn.Linear(channels, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last feature map after its BN-ReLU (B, num_features, h, w)."""
        check_image(x, self.config.in_channels)
        return F.relu(self.norm(self.blocks(self.stem(x))))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, then Linear."""
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
