"""EfficientViT (MIT): multi-scale ReLU linear attention for high-resolution vision.

Paper: "EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction"
(Cai, Li, Gan & Han, 2022, arXiv:2205.14756; MIT HAN Lab). This is the MIT model, not Microsoft's
"EfficientViT: Memory Efficient Vision Transformer with Cascaded Group Attention" (2023).

Softmax attention costs O(N^2) in the number of tokens N — too much for dense prediction at high
resolution. ReLU linear attention replaces sim(q, k) = exp(q.k) by relu(q).relu(k), so that

    out_i = relu(q_i) (sum_j relu(k_j)^T v_j) / (relu(q_i) . sum_j relu(k_j))

and the two sums are computed once for all queries: O(N) cost. ReLU attention is weak at local
detail, so EfficientViT (1) aggregates q/k/v over 5x5 neighbourhoods with depthwise + grouped
convs ("multi-scale" tokens, attended alongside the plain ones), and (2) follows every attention
module with an MBConv (a depthwise conv) for local information.

Layout (B0-B3): conv stem + depthwise-separable blocks, two MBConv stages, then two stages of
[LiteMLA + MBConv] blocks, then a conv + 2-layer MLP head. Hardswish activations, BatchNorm.
The "fewer norm" MBConvs inside attention stages use biased convs without BatchNorm, as in the
reference implementation. Presets: B0-B3 at 224 px; only rounded parameter counts are published
(3.4M / 9.1M / 24.3M / 48.6M), checked in tests/models/vision/test_efficient_vit.py.

An EfficientViT block is not the library's `Block`: there are no pre-norms (the "fewer norm"
design normalises only inside the projections) and the MLP's place is taken by an MBConv.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.conv_blocks import ConvNormAct, InvertedResidual
from bestiary.layers.patch_embed import check_image
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input
    num_classes: int = 10
    dims: tuple[int, ...] = (8, 16, 32, 64, 128)  # stem, then four stages (strides 2, 4, 8, 16, 32)
    depths: tuple[int, ...] = (1, 2, 2, 2, 2)  # stem DSConv blocks, then blocks per stage
    head_dim: int = 16  # linear attention heads = width // head_dim
    expand_ratio: float = 4.0  # MBConv expansion
    head_widths: tuple[int, int] = (1024, 1280)  # classifier head: 1x1 conv width, MLP width
    dropout: float = 0.0


class DSConv(nn.Module):
    """Depthwise 3x3 (BN, hardswish) -> pointwise 1x1 (BN), with an identity residual."""

    def __init__(self, dim: int):
        super().__init__()
        self.depth_conv = ConvNormAct(dim, dim, 3, groups=dim, activation="hardswish")
        self.point_conv = ConvNormAct(dim, dim, 1, activation="identity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.point_conv(self.depth_conv(x))


class LightMBConv(nn.Module):
    """MBConv with "fewer norms": biased 1x1 expand and depthwise convs without BatchNorm, only the
    projection is normalised. Residual when the shape is kept."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expand_ratio: float):
        super().__init__()
        hidden = round(in_channels * expand_ratio)
        self.expand = nn.Conv2d(in_channels, hidden, 1)
        self.depthwise = nn.Conv2d(hidden, hidden, 3, stride=stride, padding=1, groups=hidden)
        self.project = ConvNormAct(hidden, out_channels, 1, activation="identity")
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.hardswish(self.expand(x))
        out = self.project(F.hardswish(self.depthwise(out)))
        return x + out if self.use_residual else out


class LiteMLA(nn.Module):
    """Lightweight multi-scale ReLU linear attention: (B, C, H, W) -> (B, C, H, W), plus residual."""

    def __init__(self, dim: int, head_dim: int, scales: tuple[int, ...] = (5,), eps: float = 1e-5):
        super().__init__()
        self.head_dim, self.eps = head_dim, eps
        heads = max(1, dim // head_dim)
        total = heads * head_dim
        self.qkv = nn.Conv2d(dim, 3 * total, 1, bias=False)
        # multi-scale tokens: each q/k/v channel averaged over a k x k neighbourhood (depthwise), then
        # mixed within its head (grouped 1x1)
        self.aggregate = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(3 * total, 3 * total, k, padding=k // 2, groups=3 * total, bias=False),
                nn.Conv2d(3 * total, 3 * total, 1, groups=3 * heads, bias=False),
            )
            for k in scales
        )
        self.proj = ConvNormAct(total * (1 + len(scales)), dim, 1, activation="identity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        qkv = self.qkv(x)  # (B, 3T, H, W), channels ordered head by head as [q | k | v]
        qkv = torch.cat([qkv] + [agg(qkv) for agg in self.aggregate], dim=1)  # (B, 3T * scales, H, W)
        qkv = qkv.reshape(B, -1, 3 * self.head_dim, H * W).transpose(-1, -2)  # (B, heads', HW, 3d)
        q, k, v = qkv.chunk(3, dim=-1)  # each (B, heads', HW, d)
        q, k = F.relu(q), F.relu(k)  # the ReLU "kernel" replacing exp
        v = F.pad(v, (0, 1), value=1.0)  # an extra ones column computes the normaliser in the same matmul
        kv = k.transpose(-1, -2) @ v  # (B, heads', d, d + 1): summed over all tokens once
        out = q @ kv  # (B, heads', HW, d + 1)
        out = out[..., :-1] / (out[..., -1:] + self.eps)  # divide by relu(q_i) . sum_j relu(k_j)
        out = out.transpose(-1, -2).reshape(B, -1, H, W)  # (B, T * scales, H, W)
        return x + self.proj(out)


class EfficientViTBlock(nn.Sequential):
    """Global context (LiteMLA) then local detail (MBConv), each with a residual."""

    def __init__(self, dim: int, head_dim: int, expand_ratio: float):
        super().__init__(LiteMLA(dim, head_dim), LightMBConv(dim, dim, 1, expand_ratio))


def _preset(dims, depths, head_dim, head_widths, millions, name) -> Preset:
    return Preset(
        dict(
            dims=dims,
            depths=depths,
            head_dim=head_dim,
            head_widths=head_widths,
            num_classes=1000,
            image_size=224,
        ),
        params=None,
        source=f"no exact count published; timm {name}.r224_in1k card: {millions}M parameters",
    )


@register(
    "efficient_vit",
    family="vision",
    config=Config,
    summary="EfficientViT (MIT): multi-scale ReLU linear attention + MBConv, linear cost in image size.",
    paper="EfficientViT: Multi-Scale Linear Attention for High-Resolution Dense Prediction",
    year=2022,
    arxiv="2205.14756",
    input_kind="image",
    tiny=dict(
        dims=(4, 8, 8, 16, 16), depths=(1, 1, 1, 1, 1), head_dim=8, head_widths=(16, 16), image_size=32
    ),
    presets={
        "efficientvit_b0": _preset(
            (8, 16, 32, 64, 128), (1, 2, 2, 2, 2), 16, (1024, 1280), 3.4, "efficientvit_b0"
        ),
        "efficientvit_b1": _preset(
            (16, 32, 64, 128, 256), (1, 2, 3, 3, 4), 16, (1536, 1600), 9.1, "efficientvit_b1"
        ),
        "efficientvit_b2": _preset(
            (24, 48, 96, 192, 384), (1, 3, 4, 4, 6), 32, (2304, 2560), 24.3, "efficientvit_b2"
        ),
        "efficientvit_b3": _preset(
            (32, 64, 128, 256, 512), (1, 4, 6, 6, 9), 32, (2304, 2560), 48.6, "efficientvit_b3"
        ),
    },
    outputs="logits (B, num_classes)",
)
class EfficientViT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        if len(c.dims) != 5 or len(c.depths) != 5:
            raise ValueError("dims and depths need 5 entries: the stem and four stages")
        self.config = config
        self.num_features = c.dims[-1]
        self.stem = nn.Sequential(
            ConvNormAct(c.in_channels, c.dims[0], 3, stride=2, activation="hardswish"),
            *[DSConv(c.dims[0]) for _ in range(c.depths[0])],
        )
        self.stages = nn.ModuleList()
        for i in range(1, 5):
            cin, cout, depth = c.dims[i - 1], c.dims[i], c.depths[i]
            if i <= 2:  # convolutional stages: MBConv blocks, the first one halves the resolution
                blocks = [
                    InvertedResidual(
                        cin if j == 0 else cout,
                        cout,
                        2 if j == 0 else 1,
                        c.expand_ratio,
                        activation="hardswish",
                    )
                    for j in range(depth)
                ]
            else:  # attention stages: a downsampling MBConv, then `depth` EfficientViT blocks
                blocks = [LightMBConv(cin, cout, 2, c.expand_ratio)]
                blocks += [EfficientViTBlock(cout, c.head_dim, c.expand_ratio) for _ in range(depth)]
            self.stages.append(nn.Sequential(*blocks))
        w0, w1 = c.head_widths
        self.head_conv = ConvNormAct(c.dims[-1], w0, 1, activation="hardswish")
        self.head = nn.Sequential(
            nn.Linear(w0, w1, bias=False),
            nn.LayerNorm(w1),
            nn.Hardswish(),
            nn.Dropout(c.dropout),
            nn.Linear(w1, c.num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the last stage's map (B, num_features, H/32, W/32)."""
        check_image(x, self.config.in_channels)
        x = self.stem(x)  # (B, dims[0], H/2, W/2)
        for stage in self.stages:
            x = stage(x)  # (B, dims[i], H / 2^(i+1), W / 2^(i+1))
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, num_features, h, w) -> logits (B, num_classes): 1x1 conv, global average pool, MLP."""
        return self.head(self.head_conv(features).mean(dim=(2, 3)))  # (B, head_widths[0]) -> logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
