"""FocalNet: focal modulation replaces self-attention with gated, multi-scale depthwise-conv context.

Paper: "Focal Modulation Networks" (Yang, Li, Dai & Gao, 2022, arXiv:2203.11926).

Self-attention first lets each query interact with every key, then aggregates. Focal modulation
does it the other way round: first *aggregate* context around every location, at several
granularities, then *modulate* the query with it:

    q, z, g = Linear(x)                         # query, context input, L+1 gates per location
    z_l = GELU(depthwise_conv_l(z_{l-1}))       # l = 1..L, growing receptive fields (k = 3, 5, 7 ...)
    z_global = GELU(mean over H, W of z_L)
    m = Conv1x1(sum_l g_l * z_l + g_{L+1} * z_global)   # the modulator
    y = Linear(q * m)

Cost is linear in the number of tokens, and the gates let every location choose how much local
vs. global context it wants. The rest of the network is Swin-like: 4x4 patch stem, four stages
with 2x2 conv downsampling, and the library's pre-norm `Block` with focal modulation as its token
mixer.

Presets follow the official FocalNet-T/S/B (SRF: 2 focal levels, LRF: 3); their parameter counts
equal transformers' FocalNetForImageClassification with the same configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.drop_path import drop_path_rates_per_stage
from bestiary.layers.mlp import FeedForward
from bestiary.layers.patch_embed import check_image
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input
    patch_size: int = 4
    num_classes: int = 10
    d_model: int = 48  # first-stage width, doubled at every stage
    depths: tuple[int, ...] = (2, 2, 2)  # blocks per stage
    focal_levels: int = option(2, min=1)  # L: number of depthwise-conv context levels
    focal_window: int = option(3, min=1)  # kernel of the first level; level l uses focal_window + 2 l
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * stage width
    normalize_modulator: bool = False  # divide the aggregated context by L + 1
    layer_scale: float = 0.0  # 0 disables LayerScale (used only by the largest models)
    dropout: float = 0.0
    drop_path: float = 0.0


class FocalModulation(nn.Module):
    """(B, H, W, C) -> (B, H, W, C)."""

    def __init__(self, dim: int, focal_levels: int, focal_window: int, normalize: bool, dropout: float):
        super().__init__()
        self.levels, self.normalize = focal_levels, normalize
        self.proj_in = nn.Linear(dim, 2 * dim + focal_levels + 1)  # query, context, gates
        self.focal_layers = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, dim, k, padding=k // 2, groups=dim, bias=False),  # depthwise
                nn.GELU(),
            )
            for k in (focal_window + 2 * level for level in range(focal_levels))
        )
        self.proj_context = nn.Conv2d(dim, dim, 1)  # mixes channels of the aggregated context
        self.proj_out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        C = x.shape[-1]
        q, ctx, gates = self.proj_in(x).permute(0, 3, 1, 2).split((C, C, self.levels + 1), dim=1)
        # q, ctx: (B, C, H, W); gates: (B, L + 1, H, W)
        context = 0
        for level, layer in enumerate(self.focal_layers):
            ctx = layer(ctx)  # hierarchical: each level convolves the previous level's output
            context = context + ctx * gates[:, level : level + 1]
        global_ctx = F.gelu(ctx.mean(dim=(2, 3), keepdim=True))  # (B, C, 1, 1)
        context = context + global_ctx * gates[:, self.levels :]
        if self.normalize:
            context = context / (self.levels + 1)
        modulator = self.proj_context(context)  # (B, C, H, W)
        out = (q * modulator).permute(0, 2, 3, 1)  # (B, H, W, C)
        return self.dropout(self.proj_out(out))


def focalnet_block(dim: int, config: Config, drop_path: float) -> Block:
    """norm -> focal modulation -> residual; norm -> MLP -> residual, on (B, H, W, C) maps."""
    c = config
    modulation = FocalModulation(dim, c.focal_levels, c.focal_window, c.normalize_modulator, c.dropout)
    mlp = FeedForward(dim, int(dim * c.mlp_ratio), activation="gelu", dropout=c.dropout)
    layer_scale = c.layer_scale if c.layer_scale > 0 else None
    return Block(dim, modulation, mlp, layer_scale=layer_scale, drop_path=drop_path)


class Downsample(nn.Module):
    """2x2/2 conv then LayerNorm: (B, H, W, C) -> (B, H/2, W/2, C_out)."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(dim, out_dim, 2, stride=2)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, 0, x.shape[2] % 2, 0, x.shape[1] % 2))  # odd sizes: pad one row/column
        return self.norm(self.conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


#: our state-dict names -> transformers' FocalNetForImageClassification names (regex rules applied
#: in order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^stem\.", "focalnet.embeddings.patch_embeddings.projection."),
    (r"^stem_norm\.", "focalnet.embeddings.norm."),
    (r"^stages\.(\d+)\.(\d+)\.mixer_norm\.", r"focalnet.encoder.stages.\1.layers.\2.norm1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp_norm\.", r"focalnet.encoder.stages.\1.layers.\2.norm2."),
    (r"^stages\.(\d+)\.(\d+)\.mixer_scale\.scale$", r"focalnet.encoder.stages.\1.layers.\2.gamma_1"),
    (r"^stages\.(\d+)\.(\d+)\.mlp_scale\.scale$", r"focalnet.encoder.stages.\1.layers.\2.gamma_2"),
    (
        r"^stages\.(\d+)\.(\d+)\.mixer\.proj_(in|context|out)\.",
        r"focalnet.encoder.stages.\1.layers.\2.modulation.projection_\3.",
    ),
    (r"^stages\.(\d+)\.(\d+)\.mixer\.", r"focalnet.encoder.stages.\1.layers.\2.modulation."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.up\.", r"focalnet.encoder.stages.\1.layers.\2.mlp.fc1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.down\.", r"focalnet.encoder.stages.\1.layers.\2.mlp.fc2."),
    (r"^downsample\.(\d+)\.conv\.", r"focalnet.encoder.stages.\1.downsample.projection."),
    (r"^downsample\.(\d+)\.norm\.", r"focalnet.encoder.stages.\1.downsample.norm."),
    (r"^norm\.", "focalnet.layernorm."),
    (r"^head\.", "classifier."),
]


def _preset(d_model: int, depths: tuple[int, ...], levels: int, params: int, name: str) -> Preset:
    return Preset(
        dict(
            d_model=d_model,
            depths=depths,
            focal_levels=levels,
            focal_window=3,
            num_classes=1000,
            image_size=224,
        ),
        params=params,
        source=f"microsoft/FocalNet {name} (paper Table 1); = transformers FocalNetForImageClassification count",
    )


@register(
    "focalnet",
    family="vision",
    config=Config,
    summary="FocalNet: gated multi-scale depthwise-conv context modulates each query instead of attention.",
    paper="Focal Modulation Networks",
    year=2022,
    arxiv="2203.11926",
    input_kind="image",
    tiny=dict(d_model=8, depths=(1, 1), image_size=16, patch_size=4),
    presets={
        "focalnet_t_srf": _preset(96, (2, 2, 6, 2), 2, 28_427_116, "focalnet_tiny_srf"),
        "focalnet_t_lrf": _preset(96, (2, 2, 6, 2), 3, 28_647_928, "focalnet_tiny_lrf"),
        "focalnet_s_srf": _preset(96, (2, 2, 18, 2), 2, 49_891_216, "focalnet_small_srf"),
        "focalnet_b_srf": _preset(128, (2, 2, 18, 2), 2, 88_148_144, "focalnet_base_srf"),
    },
    outputs="logits (B, num_classes)",
)
class FocalNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.config = config
        self.stem = nn.Conv2d(c.in_channels, c.d_model, c.patch_size, stride=c.patch_size)
        self.stem_norm = nn.LayerNorm(c.d_model)
        stage_rates = drop_path_rates_per_stage(c.drop_path, c.depths)
        self.stages = nn.ModuleList()
        self.downsample = nn.ModuleList()
        dim = c.d_model
        for i, rates in enumerate(stage_rates):
            self.stages.append(nn.Sequential(*[focalnet_block(dim, c, rate) for rate in rates]))
            last = i == len(c.depths) - 1
            self.downsample.append(nn.Identity() if last else Downsample(dim, 2 * dim))
            dim = dim if last else 2 * dim
        self.num_features = dim
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the normalised last-stage map (B, num_features, h, w)."""
        check_image(x, self.config.in_channels, multiple_of=self.config.patch_size)
        x = self.stem_norm(self.stem(x).permute(0, 2, 3, 1))  # (B, H/p, W/p, C)
        for stage, down in zip(self.stages, self.downsample):
            x = down(stage(x))  # (B, h, w, C_i): the blocks work channels-last
        return self.norm(x).permute(0, 3, 1, 2)  # feature maps are channels-first, like images

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): global average pool, then Linear."""
        return self.head(features.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
