"""Swin Transformer: a hierarchical vision transformer with attention inside shifted windows.

Paper: "Swin Transformer: Hierarchical Vision Transformer using Shifted Windows"
(Liu, Lin, Cao, Hu, Wei, Zhang, Lin & Guo, 2021, arXiv:2103.14030).

Like a CNN, Swin works at four resolutions (H/4, H/8, H/16, H/32), halving the resolution and
doubling the width with "patch merging" between stages. Each block attends only within w x w
windows (cost linear in the image size); every second block shifts the windows by w/2 so that
neighbouring windows exchange information. Positions enter as a learned relative position bias
(see `bestiary.layers.window_attention`).

The presets match torchvision's swin_t / swin_s / swin_b (Swin v1) parameter counts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.mlp import FeedForward
from bestiary.layers.patch_embed import PatchEmbed, check_image
from bestiary.layers.window_attention import WindowAttention
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input (no absolute positions: any multiple works)
    patch_size: int = 2
    num_classes: int = 10
    d_model: int = 48  # width of the first stage; doubles at every stage (the paper's C)
    depths: tuple[int, ...] = (2, 2, 2)  # blocks per stage
    head_dim: int = 16  # heads per stage = width / head_dim (32 in every published Swin)
    window_size: int = option(4, min=1)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * stage width
    qkv_bias: bool = True
    dropout: float = 0.0
    drop_path: float = 0.0


def swin_block(dim: int, n_heads: int, shift: int, config: Config, drop_path: float) -> Block:
    """norm -> (shifted) window attention -> residual; norm -> MLP -> residual. (B, H, W, C) in and out."""
    attention = WindowAttention(dim, n_heads, config.window_size, shift, qkv_bias=config.qkv_bias)
    mlp = FeedForward(dim, int(dim * config.mlp_ratio), activation="gelu", dropout=config.dropout)
    return Block(dim, attention, mlp, drop_path=drop_path)


#: our state-dict names -> transformers' SwinForImageClassification names (regex rules applied in
#: order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^patch_embed\.proj\.", "swin.embeddings.patch_embeddings.projection."),
    (r"^patch_embed\.norm\.", "swin.embeddings.norm."),
    (r"^stages\.(\d+)\.(\d+)\.mixer_norm\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_before."),
    (r"^stages\.(\d+)\.(\d+)\.mlp_norm\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_after."),
    (
        r"^stages\.(\d+)\.(\d+)\.mixer\.relative",
        r"swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative",
    ),
    (r"^stages\.(\d+)\.(\d+)\.mixer\.out_proj\.", r"swin.encoder.layers.\1.blocks.\2.attention.o_proj."),
    (r"^stages\.(\d+)\.(\d+)\.mixer\.", r"swin.encoder.layers.\1.blocks.\2.attention."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.up\.", r"swin.encoder.layers.\1.blocks.\2.mlp.fc1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.down\.", r"swin.encoder.layers.\1.blocks.\2.mlp.fc2."),
    (r"^merges\.(\d+)\.", r"swin.encoder.layers.\1.downsample."),
    (r"^norm\.", "swin.layernorm."),
    (r"^head\.", "classifier."),
]


class PatchMerging(nn.Module):
    """Concatenate each 2x2 group of neighbours (4C), LayerNorm, project to 2C: (B, H, W, C) -> (B, H/2, W/2, 2C)."""

    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1:3]
        x = F.pad(x, (0, 0, 0, W % 2, 0, H % 2))  # odd sizes: pad one row/column
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )  # (B, H/2, W/2, 4C)
        return self.reduction(self.norm(x))


def _preset(d_model: int, depths: tuple[int, ...], params: int, name: str) -> Preset:
    return Preset(
        dict(
            d_model=d_model,
            depths=depths,
            head_dim=32,
            window_size=7,
            patch_size=4,
            image_size=224,
            num_classes=1000,
        ),
        params=params,
        source=f"torchvision.models.{name} docs (num_params)",
    )


@register(
    "swin",
    family="vision",
    config=Config,
    summary="Swin Transformer: hierarchical ViT with attention in shifted local windows.",
    paper="Swin Transformer: Hierarchical Vision Transformer using Shifted Windows",
    year=2021,
    arxiv="2103.14030",
    input_kind="image",
    tiny=dict(d_model=8, depths=(2, 1), head_dim=4, window_size=2, image_size=16, patch_size=2),
    presets={
        "swin_t": _preset(96, (2, 2, 6, 2), 28_288_354, "swin_t"),
        "swin_s": _preset(96, (2, 2, 18, 2), 49_606_258, "swin_s"),
        "swin_b": _preset(128, (2, 2, 18, 2), 87_768_224, "swin_b"),
    },
    outputs="logits (B, num_classes)",
)
class Swin(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.patch_embed = PatchEmbed(config.in_channels, config.d_model, config.patch_size, norm=True)
        stage_rates = drop_path_rates_per_stage(config.drop_path, config.depths)
        self.stages = nn.ModuleList()
        self.merges = nn.ModuleList()
        dim = config.d_model
        for i, rates in enumerate(stage_rates):
            if dim % config.head_dim:
                raise ValueError(f"stage width {dim} must be divisible by head_dim={config.head_dim}")
            blocks = [
                swin_block(
                    dim,
                    dim // config.head_dim,
                    0 if j % 2 == 0 else config.window_size // 2,  # shift every second block
                    config,
                    rate,
                )
                for j, rate in enumerate(rates)
            ]
            self.stages.append(nn.Sequential(*blocks))
            last = i == len(config.depths) - 1
            self.merges.append(nn.Identity() if last else PatchMerging(dim))
            dim = dim if last else 2 * dim
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the normalised last-stage map (B, num_features, h, w)."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size)
        rows, cols = self.patch_embed.grid(x)  # patch grid: (H/p, W/p)
        x = self.patch_embed(x).view(x.shape[0], rows, cols, -1)  # (B, H/p, W/p, C)
        for stage, merge in zip(self.stages, self.merges):
            x = merge(stage(x))  # (B, h, w, C_i): the blocks work channels-last
        return self.norm(x).permute(0, 3, 1, 2)  # feature maps are channels-first, like images

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, then Linear."""
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
