"""ConvNeXt: a plain ConvNet modernised step by step with the design choices of vision transformers.

Paper: "A ConvNet for the 2020s" (Liu, Mao, Wu, Feichtenhofer, Darrell & Xie, 2022, arXiv:2201.03545).

What changed relative to ResNet, each worth a fraction of a point of accuracy in the paper:
a 4x4/4 "patchify" stem; stage depths 3:3:9:3; depthwise 7x7 convs (large kernels, like a local
attention window); an inverted bottleneck (1x1 expand by 4, like a transformer MLP); GELU instead
of ReLU and a single activation per block; LayerNorm instead of BatchNorm; separate 2x2/2 conv
downsampling layers; LayerScale; stochastic depth.

The presets match torchvision's convnext_tiny/small/base/large exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.conv_blocks import LayerNorm2d
from bestiary.layers.drop_path import DropPath, drop_path_rates_per_stage
from bestiary.layers.patch_embed import check_image
from bestiary.registry import Preset, register


@dataclass
class Config:
    in_channels: int = 3
    image_size: int = 32  # only used by example_input; any multiple of 32 works
    num_classes: int = 10
    layers: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage (the paper's "depths")
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage (the paper's "dims")
    drop_path: float = 0.0
    layer_scale: float = 1e-6  # initial LayerScale value; 0 disables it


class ConvNeXtBlock(nn.Module):
    """dwconv 7x7 -> LayerNorm -> Linear(4x) -> GELU -> Linear -> LayerScale, plus the residual.

    The 1x1 convs are written as Linear layers on channels-last tensors (same maths, faster).
    """

    def __init__(self, dim: int, drop_path: float, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale)) if layer_scale > 0 else None
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        out = self.pwconv2(self.act(self.pwconv1(self.norm(out))))  # (B, H, W, C)
        if self.gamma is not None:
            out = out * self.gamma
        return x + self.drop_path(out.permute(0, 3, 1, 2))  # (B, C, H, W)


def _preset(layers, widths, params, name) -> Preset:
    return Preset(
        dict(layers=layers, widths=widths, num_classes=1000, image_size=224),
        params=params,
        source=f"torchvision.models.{name} docs (num_params)",
    )


@register(
    "convnext",
    family="vision",
    config=Config,
    summary="ConvNeXt: a ResNet modernised with transformer-era choices (7x7 depthwise, LayerNorm, GELU).",
    paper="A ConvNet for the 2020s",
    year=2022,
    arxiv="2201.03545",
    input_kind="image",
    tiny=dict(layers=(1, 1), widths=(8, 16), image_size=16),
    presets={
        "convnext_t": _preset((3, 3, 9, 3), (96, 192, 384, 768), 28_589_128, "convnext_tiny"),
        "convnext_s": _preset((3, 3, 27, 3), (96, 192, 384, 768), 50_223_688, "convnext_small"),
        "convnext_b": _preset((3, 3, 27, 3), (128, 256, 512, 1024), 88_591_464, "convnext_base"),
        "convnext_l": _preset((3, 3, 27, 3), (192, 384, 768, 1536), 197_767_336, "convnext_large"),
    },
    outputs="logits (B, num_classes)",
)
class ConvNeXt(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if len(config.layers) != len(config.widths):
            raise ValueError(f"layers {config.layers} and widths {config.widths} need the same length")
        self.config = config
        widths = config.widths
        # patchify stem: non-overlapping 4x4 patches, exactly like a ViT patch embedding
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, widths[0], kernel_size=4, stride=4),
            LayerNorm2d(widths[0], eps=1e-6),
        )
        stage_rates = drop_path_rates_per_stage(config.drop_path, config.layers)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width) in enumerate(zip(stage_rates, widths)):
            if i == 0:
                self.downsample.append(nn.Identity())
            else:  # normalise, then halve the resolution with a 2x2/2 conv
                self.downsample.append(
                    nn.Sequential(
                        LayerNorm2d(widths[i - 1], eps=1e-6), nn.Conv2d(widths[i - 1], width, 2, stride=2)
                    )
                )
            self.stages.append(
                nn.Sequential(*[ConvNeXtBlock(width, rate, config.layer_scale) for rate in rates])
            )
        self.norm = nn.LayerNorm(widths[-1], eps=1e-6)
        self.head = nn.Linear(widths[-1], config.num_classes)

    @property
    def reduction(self) -> int:
        return 4 * 2 ** (len(self.config.widths) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.config.in_channels, multiple_of=self.reduction)
        x = self.stem(x)  # (B, C0, H/4, W/4)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        x = self.norm(x.mean(dim=(2, 3)))  # global average pool, then LayerNorm: (B, C)
        return self.head(x)  # (B, num_classes)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, config.in_channels, config.image_size, config.image_size)
