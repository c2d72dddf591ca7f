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

from bestiary.layers.block import Block
from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.norms2d import GroupNorm1
from bestiary.layers.patch_embed import check_image
from bestiary.layers.spatial_mixers import Pooling
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input
    num_classes: int = 10
    depths: tuple[int, ...] = (2, 2, 4, 2)  # blocks per stage
    dims: tuple[int, ...] = (32, 64, 128, 256)  # channels per stage
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * stage width
    pool_size: int = option(3, min=1)
    layer_scale: float = 1e-5  # initial LayerScale value; 0 disables it
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


#: our state-dict names -> transformers' PoolFormerForImageClassification names (regex rules applied
#: in order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^downsample\.(\d+)\.", r"poolformer.encoder.patch_embeddings.\1.projection."),
    (r"^stages\.(\d+)\.(\d+)\.mixer_scale\.scale$", r"poolformer.encoder.block.\1.\2.layer_scale_1"),
    (r"^stages\.(\d+)\.(\d+)\.mlp_scale\.scale$", r"poolformer.encoder.block.\1.\2.layer_scale_2"),
    (r"^stages\.(\d+)\.(\d+)\.mixer_norm\.", r"poolformer.encoder.block.\1.\2.before_norm."),
    (r"^stages\.(\d+)\.(\d+)\.mlp_norm\.", r"poolformer.encoder.block.\1.\2.after_norm."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.0\.", r"poolformer.encoder.block.\1.\2.output.conv1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.3\.", r"poolformer.encoder.block.\1.\2.output.conv2."),
    (r"^norm\.", "norm."),
    (r"^head\.", "classifier."),
]


def _preset(depths, dims, params, name) -> Preset:
    return Preset(
        dict(depths=depths, dims=dims, num_classes=1000, image_size=224, layer_scale=1e-5),
        params=params,
        source=f"sail-sg/poolformer {name}; = transformers PoolFormerForImageClassification count",
    )


S_DIMS, M_DIMS = (64, 128, 320, 512), (96, 192, 384, 768)


@register(
    "poolformer",
    family="vision",
    config=Config,
    summary="PoolFormer: a MetaFormer with 3x3 average pooling as the token mixer.",
    paper="MetaFormer is Actually What You Need for Vision",
    year=2021,
    arxiv="2111.11418",
    input_kind="image",
    tiny=dict(depths=(1, 1), dims=(8, 16), image_size=16),
    presets={
        "poolformer_s12": _preset((2, 2, 6, 2), S_DIMS, 11_915_176, "poolformer_s12"),
        "poolformer_s24": _preset((4, 4, 12, 4), S_DIMS, 21_388_968, "poolformer_s24"),
        "poolformer_s36": _preset((6, 6, 18, 6), S_DIMS, 30_862_760, "poolformer_s36"),
        "poolformer_m36": _preset((6, 6, 18, 6), M_DIMS, 56_172_520, "poolformer_m36"),
        "poolformer_m48": _preset((8, 8, 24, 8), M_DIMS, 73_473_448, "poolformer_m48"),
    },
    outputs="logits (B, num_classes)",
)
class PoolFormer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if len(config.depths) != len(config.dims):
            raise ValueError(f"depths {config.depths} and dims {config.dims} need the same length")
        self.config = config
        dims = config.dims
        self.num_features = dims[-1]
        stage_rates = drop_path_rates_per_stage(config.drop_path, config.depths)
        self.downsample = nn.ModuleList()
        self.stages = nn.ModuleList()
        for i, (rates, width) in enumerate(zip(stage_rates, dims)):
            if i == 0:  # overlapping 7x7/4 patch embedding
                self.downsample.append(nn.Conv2d(config.in_channels, width, 7, stride=4, padding=2))
            else:  # overlapping 3x3/2 patch merging
                self.downsample.append(nn.Conv2d(dims[i - 1], width, 3, stride=2, padding=1))
            self.stages.append(
                nn.Sequential(
                    *[
                        Block(
                            width,
                            Pooling(config.pool_size),
                            conv_mlp(width, int(width * config.mlp_ratio), config.dropout),
                            norm=GroupNorm1,  # on (B, C, H, W) maps: normalise over (C, H, W)
                            layer_scale=config.layer_scale if config.layer_scale > 0 else None,
                            drop_path=rate,
                            channels_last=False,
                        )
                        for rate in rates
                    ]
                )
            )
        self.norm = GroupNorm1(dims[-1])
        self.head = nn.Linear(dims[-1], config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the normalised last-stage map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels)
        for down, stage in zip(self.downsample, self.stages):
            x = stage(down(x))  # (B, C_i, H_i, W_i)
        return self.norm(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, then Linear."""
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
