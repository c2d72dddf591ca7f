"""MambaVision: a hierarchical image backbone whose last stages mix a Mamba-style mixer with attention.

Paper: "MambaVision: A Hybrid Mamba-Transformer Vision Backbone" (Hatamizadeh & Kautz, NVIDIA, 2024,
arXiv:2407.08083).

Four stages at resolutions 1/4, 1/8, 1/16, 1/32, like a ResNet or ConvNeXt. The first two work on
large feature maps, where convolutions are cheapest and local features matter most: residual
conv blocks (3x3 conv, BN, GELU, 3x3 conv, BN). The last two flatten the map into a sequence of
tokens and use transformer-style blocks (x + mixer(LN(x)), x + MLP(LN(x))), where the mixer is:

- in the FIRST half of each stage, the MambaVision mixer: a Mamba SSM rebuilt for images. Mamba's
  causal conv becomes an ordinary (centred) conv, since an image has no "past", and Mamba's gate is
  replaced by a second, symmetric branch, conv + SiLU WITHOUT an SSM, to keep the local/spatial
  content the scan order would otherwise smear; the two branches (d_inner/2 channels each) are
  concatenated, not multiplied, and projected back:
      [x, z] = in_proj(u);  x -> conv -> SiLU -> selective scan;  z -> conv -> SiLU;  out_proj([x, z])
- in the SECOND half, plain multi-head self-attention, which the paper found recovers the global
  context the one-directional scan misses (attention after the mixers beat every other order).

Simplified: the tokens of a stage form one sequence (the reference splits maps into windows of
14 and 7 tokens a side, which at 224x224 input is one window per map anyway); no layer scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp
from bestiary.layers.drop_path import DropPath, drop_path_rates_per_stage
from bestiary.layers.mamba import inverse_softplus, sample_dt, selective_scan
from bestiary.layers.patch_embed import check_image
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 64  # the side of the default example input; any multiple of 32 works
    num_classes: int = 10
    depths: tuple[int, ...] = (1, 1, 2, 2)  # blocks per stage: two conv stages, two hybrid stages
    dims: tuple[int, ...] = (32, 64, 128, 256)
    n_heads: tuple[int, ...] = (2, 4, 8, 16)  # attention heads per stage (used in stages 3 and 4)
    stem_width: int = option(16, min=1)  # channels after the stem's first stride-2 conv
    d_state: int = 8  # N of the MambaVision mixers
    kernel_size: int = 3  # the mixer's two depthwise convs
    mlp_ratio: float = 4.0
    drop_path: float = 0.0


MAMBA_VISION_T = dict(
    depths=(1, 3, 8, 4), dims=(80, 160, 320, 640), n_heads=(2, 4, 8, 16), stem_width=32, num_classes=1000
)


class MambaVisionMixer(nn.Module):
    """The paper's mixer on (B, L, D) tokens: an SSM branch and a symmetric conv-only branch, concatenated.

    Non-causal: the convs are centred ('same' padding); the selective scan runs over the tokens in
    raster order (its state sees each token once, the attention blocks after it see everything)."""

    def __init__(self, d_model: int, *, d_state: int = 8, kernel_size: int = 3, dt_rank: int | None = None):
        super().__init__()
        self.d_model, self.d_state = d_model, d_state
        self.d_branch = d_branch = d_model // 2  # expand = 1, split in two branches
        self.dt_rank = dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_branch, bias=False)
        self.conv_x = nn.Conv1d(d_branch, d_branch, kernel_size, padding="same", groups=d_branch)
        self.conv_z = nn.Conv1d(d_branch, d_branch, kernel_size, padding="same", groups=d_branch)
        self.x_proj = nn.Linear(d_branch, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_branch)
        self.A_log = nn.Parameter(torch.empty(d_branch, d_state))
        self.D = nn.Parameter(torch.empty(d_branch))
        self.out_proj = nn.Linear(2 * d_branch, d_model, bias=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """Mamba's: S4D-real A, D = 1, initial dt log-uniform in [0.001, 0.1]."""
        if self.A_log.is_meta:
            return
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_log.copy_(torch.log(A).expand_as(self.A_log))
        self.D.fill_(1.0)
        self.dt_proj.bias.copy_(inverse_softplus(sample_dt(self.d_branch, 0.001, 0.1)))

    def init_cache(self, batch: int) -> None:
        raise ValueError("MambaVisionMixer is bidirectional (centred convs over an image): it has no cache")

    def ssm_branch(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, d_branch) -> conv, SiLU, selective scan -> (B, L, d_branch)."""
        x = F.silu(self.conv_x(x.transpose(1, 2))).transpose(1, 2)  # (B, L, d_branch)
        dt_low, B, C = self.x_proj(x).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt_low))  # (B, L, d_branch)
        y, _ = selective_scan(x, dt, -torch.exp(self.A_log), B, C, self.D)
        return y

    def conv_branch(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L, d_branch) -> conv, SiLU -> (B, L, d_branch): the symmetric branch, no SSM."""
        return F.silu(self.conv_z(z.transpose(1, 2))).transpose(1, 2)

    def forward(self, u: torch.Tensor, *, cache: None = None) -> torch.Tensor:
        if cache is not None:
            self.init_cache(u.shape[0])
        x, z = self.in_proj(u).chunk(2, dim=-1)  # (B, L, d_branch) each
        return self.out_proj(torch.cat([self.ssm_branch(x), self.conv_branch(z)], dim=-1))


class ConvBlock(nn.Module):
    """Stages 1-2: x + BN(conv3x3(GELU(BN(conv3x3(x)))))."""

    def __init__(self, dim: int, drop_path: float):
        super().__init__()
        self.conv1, self.norm1 = nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim)
        self.conv2, self.norm2 = nn.Conv2d(dim, dim, 3, padding=1), nn.BatchNorm2d(dim)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.norm1(self.conv1(x)), approximate="tanh")
        return x + self.drop_path(self.norm2(self.conv2(h)))


class HybridStage(nn.Module):
    """Stages 3-4 on the flattened map: MambaVision mixer blocks, then self-attention blocks
    (block i is attention when i >= ceil(depth / 2), as in the reference)."""

    def __init__(self, dim: int, n_heads: int, rates: list[float], c: Config):
        super().__init__()
        depth = len(rates)
        first_attention = math.ceil(depth / 2)
        self.blocks = nn.ModuleList()
        for i, rate in enumerate(rates):
            if i < first_attention:
                mixer: nn.Module = MambaVisionMixer(dim, d_state=c.d_state, kernel_size=c.kernel_size)
            else:
                mixer = MultiHeadAttention(dim, n_heads, bias=True, causal=False)
            mlp = make_mlp("gelu", dim, int(dim * c.mlp_ratio), bias=True)
            self.blocks.append(Block(dim, mixer, mlp, norm="layernorm", drop_path=rate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (B, H*W, C): raster order
        for block in self.blocks:
            tokens = block(tokens)
        return tokens.transpose(1, 2).reshape(B, C, H, W)


@register(
    "mamba_vision",
    family="vision",
    config=Config,
    summary="MambaVision: conv stages, then stages of MambaVision mixers (SSM + symmetric conv branch) "
    "followed by self-attention blocks.",
    paper="MambaVision: A Hybrid Mamba-Transformer Vision Backbone",
    year=2024,
    arxiv="2407.08083",
    input_kind="image",
    causal=False,
    tiny=dict(depths=(1, 1, 2, 2), dims=(8, 16, 32, 32), n_heads=(1, 1, 2, 2), stem_width=8, image_size=32),
    presets={
        "mamba_vision_t": Preset(
            MAMBA_VISION_T,
            params=None,
            source="MambaVision-T, paper Table 1: 31.8M (rounded; ours builds 31,796,808; no installed reference "
            "to count against exactly)",
        )
    },
    outputs="logits (B, num_classes)",
)
class MambaVision(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = self.config = config
        if not len(c.depths) == len(c.dims) == len(c.n_heads) == 4:
            raise ValueError(
                f"MambaVision has 4 stages: got depths {c.depths}, dims {c.dims}, n_heads {c.n_heads}"
            )
        self.num_features = c.dims[-1]
        # stem: two stride-2 3x3 convs, (B, in_channels, H, W) -> (B, dims[0], H/4, W/4)
        self.stem = nn.Sequential(
            nn.Conv2d(c.in_channels, c.stem_width, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c.stem_width),
            nn.ReLU(),
            nn.Conv2d(c.stem_width, c.dims[0], 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c.dims[0]),
            nn.ReLU(),
        )
        rates = drop_path_rates_per_stage(c.drop_path, c.depths)
        self.stages = nn.ModuleList()
        self.downsample = nn.ModuleList()  # after stages 1-3: a stride-2 3x3 conv
        for i, (dim, stage_rates) in enumerate(zip(c.dims, rates)):
            if i < 2:
                self.stages.append(nn.Sequential(*[ConvBlock(dim, r) for r in stage_rates]))
            else:
                self.stages.append(HybridStage(dim, c.n_heads[i], stage_rates, c))
            if i < 3:
                self.downsample.append(nn.Conv2d(dim, c.dims[i + 1], 3, stride=2, padding=1, bias=False))
        self.norm = nn.BatchNorm2d(c.dims[-1])
        self.head = nn.Linear(c.dims[-1], c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last stage's map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels, multiple_of=32)
        x = self.stem(x)  # (B, dims[0], H/4, W/4)
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i < 3:
                x = self.downsample[i](x)  # (B, dims[i+1], H/2^(i+3), ...)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): BatchNorm, global average pool, Linear."""
        return self.head(self.norm(features).mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
