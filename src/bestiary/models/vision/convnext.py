"""ConvNeXt: a plain ConvNet modernised step by step with the design choices of vision transformers.

Paper: "A ConvNet for the 2020s" (Liu, Mao, Wu, Feichtenhofer, Darrell & Xie, 2022, arXiv:2201.03545).

What changed relative to ResNet, each worth a fraction of a point of accuracy in the paper:
a 4x4/4 "patchify" stem; stage depths 3:3:9:3; depthwise 7x7 convs (large kernels, like a local
attention window); an inverted bottleneck (1x1 expand by 4, like a transformer MLP); GELU instead
of ReLU and a single activation per block; LayerNorm instead of BatchNorm; separate 2x2/2 conv
downsampling layers; LayerScale; stochastic depth.

The presets match torchvision's convnext_tiny/small/base/large exactly.

The ConvNeXt block is not the library's `Block` (norm -> mixer -> residual, norm -> MLP ->
residual): it has one residual around dwconv -> norm -> MLP, and its norm sits after the token
mixer (the depthwise conv), not before it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import ChannelScale
from bestiary.layers.conv_blocks import LayerNorm2d
from bestiary.layers.drop_path import DropPath, drop_path_rates_per_stage
from bestiary.layers.patch_embed import check_image
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input; any multiple of 32 works
    num_classes: int = 10
    depths: tuple[int, ...] = (2, 2, 2, 2)  # blocks per stage
    dims: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
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
        self.layer_scale = ChannelScale(dim, layer_scale) if layer_scale > 0 else nn.Identity()
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.dwconv(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        out = self.pwconv2(self.act(self.pwconv1(self.norm(out))))  # (B, H, W, C)
        return x + self.drop_path(self.layer_scale(out).permute(0, 3, 1, 2))  # (B, C, H, W)


#: our state-dict names -> transformers' ConvNextForImageClassification names (regex rules applied
#: in order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^stem\.0\.", "convnext.embeddings.patch_embeddings."),
    (r"^stem\.1\.", "convnext.embeddings.layernorm."),
    (r"^downsample\.(\d+)\.", r"convnext.encoder.stages.\1.downsampling_layer."),
    (
        r"^stages\.(\d+)\.(\d+)\.layer_scale\.scale$",
        r"convnext.encoder.stages.\1.layers.\2.layer_scale_parameter",
    ),
    (r"^stages\.(\d+)\.(\d+)\.norm\.", r"convnext.encoder.stages.\1.layers.\2.layernorm."),
    (r"^stages\.(\d+)\.(\d+)\.", r"convnext.encoder.stages.\1.layers.\2."),  # dwconv, pwconv1/2
    (r"^norm\.", "convnext.layernorm."),
    (r"^head\.", "classifier."),
]


def _preset(depths, dims, params, name) -> Preset:
    return Preset(
        dict(depths=depths, dims=dims, num_classes=1000, image_size=224),
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
    tiny=dict(depths=(1, 1), dims=(8, 16), image_size=16),
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
        if len(config.depths) != len(config.dims):
            raise ValueError(f"depths {config.depths} and dims {config.dims} need the same length")
        self.config = config
        dims = config.dims
        self.num_features = dims[-1]
        # patchify stem: non-overlapping 4x4 patches, exactly like a ViT patch embedding
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, dims[0], kernel_size=4, stride=4),
            LayerNorm2d(dims[0], eps=1e-6),
        )
        stage_rates = drop_path_rates_per_stage(config.drop_path, config.depths)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width) in enumerate(zip(stage_rates, dims)):
            if i == 0:
                self.downsample.append(nn.Identity())
            else:  # normalise, then halve the resolution with a 2x2/2 conv
                self.downsample.append(
                    nn.Sequential(
                        LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], width, 2, stride=2)
                    )
                )
            self.stages.append(
                nn.Sequential(*[ConvNeXtBlock(width, rate, config.layer_scale) for rate in rates])
            )
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)
        self.head = nn.Linear(dims[-1], config.num_classes)

    @property
    def reduction(self) -> int:
        return 4 * 2 ** (len(self.config.dims) - 1)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last stage's map (B, num_features, H/r, W/r), r = `reduction`."""
        check_image(x, self.config.in_channels, multiple_of=self.reduction)
        x = self.stem(x)  # (B, C0, H/4, W/4)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, LayerNorm, Linear."""
        return self.head(self.norm(features.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
