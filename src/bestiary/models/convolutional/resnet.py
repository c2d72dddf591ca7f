"""ResNet: residual networks, where every block learns a correction added to its input.

Paper: "Deep Residual Learning for Image Recognition" (He, Zhang, Ren & Sun, 2015, arXiv:1512.03385).
ResNeXt's grouped bottleneck (`groups`, `width_per_group`): "Aggregated Residual Transformations for
Deep Neural Networks" (Xie et al., 2016, arXiv:1611.05431).

The presets reproduce torchvision's ImageNet models exactly ("ResNet v1.5": in the bottleneck the
stride sits on the 3x3 conv, not the first 1x1, which is what everyone trains today). The parameter
counts match torchvision's model docs.

Why residuals work: y = x + F(x) means a block that learns nothing (F = 0) is the identity, so
adding depth can no longer make the network worse, and the gradient has a direct path back through
every "+ x".
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.conv_blocks import ConvNormAct
from bestiary.layers.norms2d import NORM_KINDS
from bestiary.layers.patch_embed import check_image
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    num_classes: int = 10
    block: str = option(
        "basic", choices=("basic", "bottleneck")
    )  # "basic" (two 3x3 convs; ResNet-18/34) or "bottleneck" (1x1-3x3-1x1; 50+)
    depths: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage; the width doubles at every stage
    d_model: int = 64  # width of the stem and the first stage
    groups: int = option(1, min=1)  # >1 gives ResNeXt's grouped 3x3 conv
    width_per_group: int = option(64, min=1)  # bottleneck width per group at d_model=64 (ResNeXt's "d")
    stem: str = option(
        "imagenet", choices=("imagenet", "cifar")
    )  # "imagenet": 7x7/2 conv + 3x3/2 max-pool; "cifar": one 3x3/1 conv
    image_size: int = 32  # the side of the default example input: ResNet takes any image size
    norm: str = option(
        "batch", choices=NORM_KINDS
    )  # "batch" | "layer" | "instance" | "group" | "none" (see layers.norms2d)
    norm_groups: int = option(8, min=1)  # groups for norm="group"


class BasicBlock(nn.Module):
    """Two 3x3 convs; the shortcut is a 1x1 conv + norm when the shape changes.

    `norm`, `norm_groups`: the feature-map norm after every conv (`ConvNormAct`)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        groups: int,
        base_width: int,
        norm: str,
        norm_groups: int,
    ):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError("the basic block has no grouped version; use block='bottleneck'")
        norms = dict(norm=norm, norm_groups=norm_groups)
        self.conv1 = ConvNormAct(in_channels, width, 3, stride, **norms)
        self.conv2 = ConvNormAct(width, width, 3, activation="identity", **norms)  # ReLU after the sum
        self.shortcut = _shortcut(in_channels, width, stride, norms)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (carries the stride, and ResNeXt's groups) -> 1x1 expand by 4."""

    expansion = 4

    def __init__(
        self,
        in_channels: int,
        width: int,
        stride: int,
        groups: int,
        base_width: int,
        norm: str,
        norm_groups: int,
    ):
        super().__init__()
        inner = int(width * base_width / 64) * groups  # = width for plain ResNet
        out = width * self.expansion
        norms = dict(norm=norm, norm_groups=norm_groups)
        self.conv1 = ConvNormAct(in_channels, inner, 1, **norms)
        self.conv2 = ConvNormAct(inner, inner, 3, stride, groups=groups, **norms)
        self.conv3 = ConvNormAct(inner, out, 1, activation="identity", **norms)
        self.shortcut = _shortcut(in_channels, out, stride, norms)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3(self.conv2(self.conv1(x))) + self.shortcut(x))


def _shortcut(in_channels: int, out_channels: int, stride: int, norms: dict) -> nn.Module:
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    # "option B" of the paper: a projection only where the shape changes
    return ConvNormAct(in_channels, out_channels, 1, stride, activation="identity", **norms)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _preset(block: str, depths: tuple[int, ...], params: int, name: str, **extra) -> Preset:
    return Preset(
        dict(block=block, depths=depths, num_classes=1000, image_size=224, **extra),
        params=params,
        source=f"torchvision.models.{name} docs (num_params)",
    )


@register(
    "resnet",
    family="convolutional",
    config=Config,
    summary="Residual network: stacks of conv blocks with identity shortcuts (y = x + F(x)).",
    paper="Deep Residual Learning for Image Recognition",
    year=2015,
    arxiv="1512.03385",
    input_kind="image",
    tiny=dict(depths=(1, 1), d_model=8, stem="cifar", image_size=16),
    presets={
        "resnet18": _preset("basic", (2, 2, 2, 2), 11_689_512, "resnet18"),
        "resnet34": _preset("basic", (3, 4, 6, 3), 21_797_672, "resnet34"),
        "resnet50": _preset("bottleneck", (3, 4, 6, 3), 25_557_032, "resnet50"),
        "resnet101": _preset("bottleneck", (3, 4, 23, 3), 44_549_160, "resnet101"),
        "resnet152": _preset("bottleneck", (3, 8, 36, 3), 60_192_808, "resnet152"),
        "resnext50_32x4d": _preset(
            "bottleneck", (3, 4, 6, 3), 25_028_904, "resnext50_32x4d", groups=32, width_per_group=4
        ),
        "wide_resnet50_2": _preset(
            "bottleneck", (3, 4, 6, 3), 68_883_240, "wide_resnet50_2", width_per_group=128
        ),
        "wide_resnet101_2": _preset(
            "bottleneck", (3, 4, 23, 3), 126_886_696, "wide_resnet101_2", width_per_group=128
        ),
        "resnext101_32x8d": _preset(
            "bottleneck", (3, 4, 23, 3), 88_791_336, "resnext101_32x8d", groups=32, width_per_group=8
        ),
        "resnext101_64x4d": _preset(
            "bottleneck", (3, 4, 23, 3), 83_455_272, "resnext101_64x4d", groups=64, width_per_group=4
        ),
    },
    outputs="logits (B, num_classes)",
)
class ResNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.block not in BLOCKS:
            raise ValueError(f"block must be one of {list(BLOCKS)}, got {config.block!r}")
        if config.norm not in NORM_KINDS:
            raise ValueError(f"norm must be one of {NORM_KINDS}, got {config.norm!r}")
        self.config = config
        block = BLOCKS[config.block]
        # the same network with another normaliser after every conv (notebook P01)
        norms = dict(norm=config.norm, norm_groups=config.norm_groups)
        if config.stem == "imagenet":  # 224 -> 56: cheap early downsampling of a big image
            self.stem = nn.Sequential(
                ConvNormAct(config.in_channels, config.d_model, 7, 2, **norms),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            )
        elif config.stem == "cifar":  # small images keep their resolution
            self.stem = ConvNormAct(config.in_channels, config.d_model, 3, 1, **norms)
        else:
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {config.stem!r}")
        stages: list[nn.Module] = []
        channels = config.d_model
        for i, n_blocks in enumerate(config.depths):
            width = config.d_model * 2**i
            blocks = []
            for j in range(n_blocks):
                stride = 2 if (i > 0 and j == 0) else 1  # halve the resolution entering stages 2, 3, ...
                blocks.append(block(channels, width, stride, config.groups, config.width_per_group, **norms))
                channels = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, config.num_classes)
        self.num_features = channels

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last feature map (B, num_features, H/s, W/s)."""
        check_image(x, self.config.in_channels)
        return self.stages(self.stem(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, then Linear."""
        return self.fc(self.pool(features).flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
