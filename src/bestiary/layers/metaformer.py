"""The MetaFormer block: a transformer block with the attention replaced by any "token mixer".

"MetaFormer is Actually What You Need for Vision" (Yu et al., 2021, arXiv:2111.11418) and
"MetaFormer Baselines for Vision" (Yu et al., 2022, arXiv:2210.13452).

    x = x + drop_path(ls1 * mixer(norm1(x)))     # token mixing: attention, pooling, conv, ...
    x = x + drop_path(ls2 * mlp(norm2(x)))       # channel mixing

The papers' claim: much of a transformer's success comes from this general structure, not from
attention; even average pooling as the mixer (PoolFormer) works well.

The block is layout-agnostic: the caller passes the norms, mixer and MLP. `channels_last` only
decides how the per-channel LayerScale broadcasts: (B, H, W, C) or (B, C, H, W).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.drop_path import DropPath


class ChannelScale(nn.Module):
    """A learned per-channel scale (LayerScale / ResScale) for (B, C, H, W) or (B, ..., C) inputs."""

    def __init__(self, dim: int, init_value: float, channels_last: bool):
        super().__init__()
        self.channels_last = channels_last
        self.scale = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.scale if self.channels_last else self.scale[:, None, None])


class MetaFormerBlock(nn.Module):
    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        mlp: nn.Module,
        norm1: nn.Module,
        norm2: nn.Module,
        layer_scale: float | None = None,
        res_scale: float | None = None,
        drop_path: float = 0.0,
        channels_last: bool = False,
    ):
        super().__init__()
        self.norm1, self.mixer, self.norm2, self.mlp = norm1, mixer, norm2, mlp

        def scale(value: float | None) -> nn.Module:
            return ChannelScale(dim, value, channels_last) if value is not None else nn.Identity()

        self.layer_scale1, self.layer_scale2 = scale(layer_scale), scale(layer_scale)
        # ResScale (MetaFormer baselines): scale the shortcut instead of the branch
        self.res_scale1, self.res_scale2 = scale(res_scale), scale(res_scale)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.res_scale1(x) + self.drop_path(self.layer_scale1(self.mixer(self.norm1(x))))
        return self.res_scale2(x) + self.drop_path(self.layer_scale2(self.mlp(self.norm2(x))))


class Pooling(nn.Module):
    """PoolFormer's token mixer on (B, C, H, W): average of the 3x3 neighbourhood minus the token
    itself (the block adds the token back through the residual). Padding is not counted in the
    average, so border tokens are not pulled towards zero."""

    def __init__(self, pool_size: int = 3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(x) - x


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group: normalise over (C, H, W) of each sample (PoolFormer's norm)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(1, dim, eps=eps)


class StarReLU(nn.Module):
    """s * relu(x)^2 + b with learned scalars s and b (MetaFormer baselines, arXiv:2210.13452):
    squared ReLU, rescaled so that its output has roughly zero mean and unit variance."""

    def __init__(self, scale: float = 0.8944, bias: float = -0.4472):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.relu(x) ** 2 + self.bias
