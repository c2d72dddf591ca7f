"""The four-stage MetaFormer network of "MetaFormer Baselines for Vision", with a token mixer per stage.

"MetaFormer is Actually What You Need for Vision" (Yu et al., 2021, arXiv:2111.11418) and
"MetaFormer Baselines for Vision" (Yu et al., 2022, arXiv:2210.13452), whose network this follows.

Every block is the one `Block`: `x + mixer(norm(x))` then `x + mlp(norm(x))`; only the mixer
changes between the baselines (`bestiary.layers.spatial_mixers`):
- "identity": no mixing at all (IdentityFormer): a surprisingly strong baseline,
- "pooling":  3x3 average pool minus the token (PoolFormerV2),
- "sepconv":  MobileNetV2-style separable conv, 1x1 -> 7x7 depthwise -> 1x1 (ConvFormer),
- "attention": multi-head self-attention over all tokens of the stage (CAFormer uses it in the
  last two stages, where there are few tokens).
Four stages at strides 4, 8, 16, 32 (7x7/4 conv stem, 3x3/2 conv downsampling, each preceded by a
norm). The baselines paper adds StarReLU (s * relu(x)^2 + b) in the MLPs, LayerNorms and Linears
without biases, ResScale (a learned scale on the shortcut) in the last two stages and an MLP
classifier head.

Everything runs channels-last, (B, H, W, C), so one LayerNorm/Linear code path serves all mixers.
The `metaformer` and `caformer` registry entries are this network with different default mixers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.mlp import FeedForward, SquaredReLU
from bestiary.layers.patch_embed import check_image
from bestiary.layers.spatial_mixers import ChannelsFirst, MapAttention, Pooling, SepConv
from bestiary.options import option

MIXERS = ("identity", "pooling", "sepconv", "attention")


@dataclass(kw_only=True)
class MetaFormerConfig:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input; any multiple of 32 works
    num_classes: int = 10
    depths: tuple[int, ...] = (2, 2, 4, 2)  # blocks per stage
    dims: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    token_mixers: tuple[str, ...] = option(
        ("pooling", "pooling", "pooling", "pooling"), choices=MIXERS
    )  # one per stage
    head_dim: int = 32  # attention mixer: heads = width // head_dim
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * stage width
    res_scale_stages: tuple[int, ...] = option((2, 3), min=0)  # stages whose shortcuts get a learned ResScale
    mlp_head: bool = True  # the baselines' 2-layer head (Linear-SquaredReLU-LayerNorm-Linear)
    dropout: float = 0.0  # before the last classifier layer
    drop_path: float = 0.0


def norm_no_bias(dim: int) -> nn.LayerNorm:
    """LayerNorm with a learned scale but no shift (the baselines paper's choice)."""
    return nn.LayerNorm(dim, eps=1e-6, bias=False)


def make_mixer(kind: str, dim: int, head_dim: int) -> nn.Module:
    """A token mixer for channels-last (B, H, W, dim) maps; `kind` in MIXERS."""
    if kind == "identity":
        return nn.Identity()
    if kind == "pooling":
        return ChannelsFirst(Pooling(3))
    if kind == "sepconv":
        return SepConv(dim)
    if kind == "attention":
        return MapAttention(dim, head_dim)
    raise ValueError(f"unknown token mixer {kind!r}; choose one of {MIXERS}")


class MetaFormerNet(nn.Module):
    """The four-stage MetaFormer classifier. (B, C, H, W) -> logits (B, num_classes)."""

    def __init__(self, config: MetaFormerConfig):
        super().__init__()
        c = config
        if not len(c.depths) == len(c.dims) == len(c.token_mixers):
            raise ValueError("depths, dims and token_mixers need one entry per stage")
        self.config = config
        self.num_features = c.dims[-1]
        self.stem = nn.Conv2d(c.in_channels, c.dims[0], 7, stride=4, padding=2)
        self.stem_norm = norm_no_bias(c.dims[0])
        stage_rates = drop_path_rates_per_stage(c.drop_path, c.depths)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width, mixer) in enumerate(zip(stage_rates, c.dims, c.token_mixers)):
            if i == 0:
                self.downsample.append(nn.Identity())
            else:  # norm, then a 3x3/2 conv
                self.downsample.append(
                    nn.Sequential(
                        norm_no_bias(c.dims[i - 1]),
                        ChannelsFirst(nn.Conv2d(c.dims[i - 1], width, 3, stride=2, padding=1)),
                    )
                )
            hidden = int(width * c.mlp_ratio)
            self.stages.append(
                nn.Sequential(
                    *[
                        Block(
                            width,
                            make_mixer(mixer, width, c.head_dim),
                            FeedForward(width, hidden, activation="star_relu", bias=False),
                            norm=norm_no_bias,
                            res_scale=1.0 if i in c.res_scale_stages else None,
                            drop_path=rate,
                        )
                        for rate in rates
                    ]
                )
            )
        last = c.dims[-1]
        self.norm = nn.LayerNorm(last, eps=1e-6)
        if c.mlp_head:
            hidden = int(c.mlp_ratio * last)
            self.head = nn.Sequential(
                nn.Linear(last, hidden),
                SquaredReLU(),
                nn.LayerNorm(hidden, eps=1e-6),
                nn.Dropout(c.dropout),
                nn.Linear(hidden, c.num_classes),
            )
        else:
            self.head = nn.Sequential(nn.Dropout(c.dropout), nn.Linear(last, c.num_classes))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last stage's map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels)
        x = self.stem(x).permute(0, 2, 3, 1)  # (B, H/4, W/4, C0), channels-last from here on
        x = self.stem_norm(x)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))  # (B, H_i, W_i, C_i)
        return x.permute(0, 3, 1, 2)  # feature maps are channels-first, like images

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, norm, head."""
        return self.head(self.norm(features.mean(dim=(2, 3))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
