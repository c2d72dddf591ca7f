"""Token mixers for feature maps: pooling, separable convolution and global self-attention.

"MetaFormer is Actually What You Need for Vision" (Yu et al., 2021, arXiv:2111.11418) showed that a
vision transformer's block keeps most of its accuracy when attention is replaced by a plain 3x3
average pool (`Pooling`, PoolFormer); "MetaFormer Baselines for Vision" (Yu et al., 2022,
arXiv:2210.13452) added the MobileNetV2-style separable convolution (`SepConv`, ConvFormer) and
used attention over all positions of a stage (`MapAttention`, CAFormer's late stages).

Each one is the `mixer` of a `bestiary.layers.block.Block`: a map in, a map of the same shape out.
`Pooling` works on (B, C, H, W) (PoolFormer keeps that layout); `SepConv` and `MapAttention` work on
channels-last (B, H, W, C) maps, where LayerNorm and Linear act on the last dimension
(`ChannelsFirst` runs a (B, C, H, W) module such as `Pooling` on them).
"""

from __future__ import annotations

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.mlp import StarReLU


class ChannelsFirst(nn.Module):
    """Run a (B, C, H, W) module on a channels-last (B, H, W, C) tensor."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # (B, H, W, C)


class Pooling(nn.Module):
    """PoolFormer's token mixer on (B, C, H, W): average of the k x k neighbourhood minus the token
    itself (the block adds the token back through the residual). Padding is not counted in the
    average, so border tokens are not pulled towards zero."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class SepConv(nn.Module):
    """Inverted separable conv (MobileNetV2) on (B, H, W, C): Linear C -> 2C, StarReLU, 7x7
    depthwise conv, Linear 2C -> C. No biases, as in the MetaFormer baselines."""

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


class MapAttention(MultiHeadAttention):
    """Self-attention over all H*W positions of a (B, H, W, C) map; `dim // head_dim` heads.

    No biases anywhere (the MetaFormer baselines' choice). The map is flattened to a sequence of
    H*W tokens for `MultiHeadAttention` and folded back.
    """

    def __init__(self, dim: int, head_dim: int):
        super().__init__(dim, max(1, dim // head_dim), bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        B, H, W, C = x.shape
        return super().forward(x.reshape(B, H * W, C)).view(B, H, W, C)  # (B, H, W, C)
