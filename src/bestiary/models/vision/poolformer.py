"""PoolFormer: a MetaFormer whose token mixer is plain average pooling.

Paper: "MetaFormer is Actually What You Need for Vision" (Yu, Luo, Zhou, Si, Zhou, Wang, Feng &
Yan, 2021, arXiv:2111.11418).

If a non-parametric 3x3 average pool in place of attention reaches ~77-82% ImageNet accuracy,
then the general block structure (norm -> token mixer -> residual, norm -> MLP -> residual) is
doing much of the work. Four stages (H/4 ... H/32) like a CNN; GroupNorm with one group; 1x1-conv
MLPs; LayerScale.

Presets match the official models (and transformers' PoolFormerForImageClassification) exactly:
s12 = 11,915,176 parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.metaformer import GroupNorm1, MetaFormerBlock, Pooling
from bestiary.layers.patch_embed import check_image
from bestiary.registry import Preset, register


@dataclass
class Config:
    in_channels: int = 3
    image_size: int = 32  # only used by example_input
    num_classes: int = 10
    layers: tuple[int, ...] = (2, 2, 4, 2)  # blocks per stage
    widths: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    mlp_ratio: float = 4.0
    pool_size: int = 3
    layer_scale: float = 1e-5
    dropout: float = 0.0
    drop_path: float = 0.0


def conv_mlp(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    """The channel MLP as 1x1 convs on (B, C, H, W)."""
    return nn.Sequential(
        nn.Conv2d(dim, hidden, 1),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Conv2d(hidden, dim, 1),
        nn.Dropout(dropout),
    )


def _preset(layers, widths, params, name) -> Preset:
    return Preset(
        dict(layers=layers, widths=widths, num_classes=1000, image_size=224, layer_scale=1e-5),
        params=params,
        source=f"sail-sg/poolformer {name}; = transformers PoolFormerForImageClassification count",
    )


S_WIDTHS, M_WIDTHS = (64, 128, 320, 512), (96, 192, 384, 768)


@register(
    "poolformer",
    family="vision",
    config=Config,
    summary="PoolFormer: a MetaFormer with 3x3 average pooling as the token mixer.",
    paper="MetaFormer is Actually What You Need for Vision",
    year=2021,
    arxiv="2111.11418",
    input_kind="image",
    tiny=dict(layers=(1, 1), widths=(8, 16), image_size=16),
    presets={
        "poolformer_s12": _preset((2, 2, 6, 2), S_WIDTHS, 11_915_176, "poolformer_s12"),
        "poolformer_s24": _preset((4, 4, 12, 4), S_WIDTHS, 21_388_968, "poolformer_s24"),
        "poolformer_s36": _preset((6, 6, 18, 6), S_WIDTHS, 30_862_760, "poolformer_s36"),
        "poolformer_m36": _preset((6, 6, 18, 6), M_WIDTHS, 56_172_520, "poolformer_m36"),
        "poolformer_m48": _preset((8, 8, 24, 8), M_WIDTHS, 73_473_448, "poolformer_m48"),
    },
    outputs="logits (B, num_classes)",
)
class PoolFormer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if len(config.layers) != len(config.widths):
            raise ValueError(f"layers {config.layers} and widths {config.widths} need the same length")
        self.config = config
        widths = config.widths
        stage_rates = drop_path_rates_per_stage(config.drop_path, config.layers)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width) in enumerate(zip(stage_rates, widths)):
            if i == 0:  # overlapping 7x7/4 patch embedding
                self.downsample.append(nn.Conv2d(config.in_channels, width, 7, stride=4, padding=2))
            else:  # overlapping 3x3/2 patch merging
                self.downsample.append(nn.Conv2d(widths[i - 1], width, 3, stride=2, padding=1))
            self.stages.append(
                nn.Sequential(
                    *[
                        MetaFormerBlock(
                            width,
                            mixer=Pooling(config.pool_size),
                            mlp=conv_mlp(width, int(width * config.mlp_ratio), config.dropout),
                            norm1=GroupNorm1(width),
                            norm2=GroupNorm1(width),
                            layer_scale=config.layer_scale if config.layer_scale > 0 else None,
                            drop_path=rate,
                        )
                        for rate in rates
                    ]
                )
            )
        self.norm = GroupNorm1(widths[-1])
        self.head = nn.Linear(widths[-1], config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.config.in_channels)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))  # (B, C_i, H_i, W_i)
        return self.head(self.norm(x).mean(dim=(2, 3)))  # (B, num_classes)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, config.in_channels, config.image_size, config.image_size)
