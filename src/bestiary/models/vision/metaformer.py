"""MetaFormer: the general "token mixer + channel MLP" architecture, with a choice of mixer per stage.

Papers: "MetaFormer is Actually What You Need for Vision" (Yu et al., 2021, arXiv:2111.11418)
and "MetaFormer Baselines for Vision" (Yu et al., 2022, arXiv:2210.13452), whose network this file
follows.

Every block is `x + mixer(norm(x))` then `x + mlp(norm(x))`; only the token mixer changes:
- "identity": no mixing at all (IdentityFormer) — a surprisingly strong baseline,
- "pooling":  3x3 average pool minus the token (PoolFormerV2),
- "sepconv":  MobileNetV2-style separable conv, 1x1 -> 7x7 depthwise -> 1x1 (ConvFormer),
- "attention": multi-head self-attention over all tokens of the stage (CAFormer uses it in the
  last two stages, where there are few tokens).
Four stages at strides 4, 8, 16, 32 (7x7/4 conv stem, 3x3/2 conv downsampling, each preceded by a
norm). The baselines paper adds StarReLU (s * relu(x)^2 + b), bias-free LayerNorms and linears,
ResScale (a learned scale on the shortcut) in the last two stages and an MLP classifier head.

Everything here runs channels-last, (B, H, W, C), so one LayerNorm/Linear code path serves all
mixers; the conv and pooling mixers permute to (B, C, H, W) internally.
`bestiary.models.vision.caformer` is this network with the CAFormer mixers and presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.metaformer import MetaFormerBlock, Pooling, StarReLU
from bestiary.layers.patch_embed import check_image
from bestiary.registry import register

MIXERS = ("identity", "pooling", "sepconv", "attention")


@dataclass
class Config:
    in_channels: int = 3
    image_size: int = 32  # only used by example_input
    num_classes: int = 10
    layers: tuple[int, ...] = (2, 2, 4, 2)  # blocks per stage
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    token_mixers: tuple[str, ...] = ("pooling", "pooling", "pooling", "pooling")  # one per stage
    head_dim: int = 32  # attention mixer: heads = width // head_dim
    mlp_ratio: float = 4.0
    res_scale_stages: tuple[int, ...] = (2, 3)  # stages whose shortcuts get a learned ResScale
    mlp_head: bool = True  # the baselines' 2-layer head (Linear-SquaredReLU-LayerNorm-Linear)
    dropout: float = 0.0  # before the last classifier layer
    drop_path: float = 0.0


def norm_no_bias(dim: int) -> nn.LayerNorm:
    """LayerNorm with a learned scale but no shift (the baselines paper's choice)."""
    return nn.LayerNorm(dim, eps=1e-6, bias=False)


class ChannelsFirst(nn.Module):
    """Run a (B, C, H, W) module on a channels-last (B, H, W, C) tensor."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class SepConv(nn.Module):
    """Inverted separable conv (MobileNetV2): Linear C->2C, StarReLU, 7x7 depthwise, Linear 2C->C."""

    def __init__(self, dim: int, expansion: int = 2, kernel_size: int = 7):
        super().__init__()
        hidden = expansion * dim
        self.pwconv1 = nn.Linear(dim, hidden, bias=False)
        self.act = StarReLU()
        self.dwconv = nn.Conv2d(
            hidden, hidden, kernel_size, padding=kernel_size // 2, groups=hidden, bias=False
        )
        self.pwconv2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.pwconv1(x))  # (B, H, W, 2C)
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # depthwise conv wants (B, C, H, W)
        return self.pwconv2(x)  # (B, H, W, C)


class TokenAttention(nn.Module):
    """Self-attention over the H*W tokens of a (B, H, W, C) map (no biases, as in the paper)."""

    def __init__(self, dim: int, head_dim: int):
        super().__init__()
        self.attn = MultiHeadAttention(dim, max(1, dim // head_dim), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        return self.attn(x.reshape(B, H * W, C)).view(B, H, W, C)  # (B, H, W, C)


class StarMlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__(nn.Linear(dim, hidden, bias=False), StarReLU(), nn.Linear(hidden, dim, bias=False))


class SquaredReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) ** 2


def make_mixer(kind: str, dim: int, head_dim: int) -> nn.Module:
    if kind == "identity":
        return nn.Identity()
    if kind == "pooling":
        return ChannelsFirst(Pooling(3))
    if kind == "sepconv":
        return SepConv(dim)
    if kind == "attention":
        return TokenAttention(dim, head_dim)
    raise ValueError(f"unknown token mixer {kind!r}; choose one of {MIXERS}")


class MetaFormerNet(nn.Module):
    """The four-stage MetaFormer network (shared by the `metaformer` and `caformer` entries)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        if not len(c.layers) == len(c.widths) == len(c.token_mixers):
            raise ValueError("layers, widths and token_mixers need one entry per stage")
        self.config = config
        self.stem = nn.Conv2d(c.in_channels, c.widths[0], 7, stride=4, padding=2)
        self.stem_norm = norm_no_bias(c.widths[0])
        stage_rates = drop_path_rates_per_stage(c.drop_path, c.layers)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width, mixer) in enumerate(zip(stage_rates, c.widths, c.token_mixers)):
            if i == 0:
                self.downsample.append(nn.Identity())
            else:  # norm, then a 3x3/2 conv
                self.downsample.append(
                    nn.Sequential(
                        norm_no_bias(c.widths[i - 1]),
                        ChannelsFirst(nn.Conv2d(c.widths[i - 1], width, 3, stride=2, padding=1)),
                    )
                )
            res_scale = 1.0 if i in c.res_scale_stages else None
            self.stages.append(
                nn.Sequential(
                    *[
                        MetaFormerBlock(
                            width,
                            mixer=make_mixer(mixer, width, c.head_dim),
                            mlp=StarMlp(width, int(width * c.mlp_ratio)),
                            norm1=norm_no_bias(width),
                            norm2=norm_no_bias(width),
                            res_scale=res_scale,
                            drop_path=rate,
                            channels_last=True,
                        )
                        for rate in rates
                    ]
                )
            )
        last = c.widths[-1]
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.config.in_channels)
        x = self.stem(x).permute(0, 2, 3, 1)  # (B, H/4, W/4, C0), channels-last from here on
        x = self.stem_norm(x)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))  # (B, H_i, W_i, C_i)
        return self.head(self.norm(x.mean(dim=(1, 2))))  # (B, num_classes)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, config.in_channels, config.image_size, config.image_size)


@register(
    "metaformer",
    family="vision",
    config=Config,
    summary="MetaFormer: norm -> any token mixer -> residual, norm -> MLP -> residual, in four stages.",
    paper="MetaFormer Baselines for Vision",
    year=2022,
    arxiv="2210.13452",
    input_kind="image",
    tiny=dict(
        layers=(1, 1, 1, 1),
        widths=(8, 8, 16, 16),
        token_mixers=("identity", "pooling", "sepconv", "attention"),
        head_dim=8,
        image_size=32,
    ),
    outputs="logits (B, num_classes)",
)
class MetaFormer(MetaFormerNet):
    pass
