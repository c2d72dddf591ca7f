"""Convolutional building blocks shared by the CNN families.

- `ConvNormAct`: Conv2d -> BatchNorm -> activation, the unit every modern CNN is made of
  (BatchNorm: Ioffe & Szegedy, 2015, arXiv:1502.03167); `norm` picks another feature-map norm
  (`bestiary.layers.norms2d`).
- `SqueezeExcite`: channel attention from "Squeeze-and-Excitation Networks" (Hu et al., 2017,
  arXiv:1709.01507).
- `InvertedResidual`: the MBConv block of "MobileNetV2: Inverted Residuals and Linear Bottlenecks"
  (Sandler et al., 2018, arXiv:1801.04381), with the optional squeeze-excite and stochastic depth
  that EfficientNet adds (Tan & Le, 2019, arXiv:1905.11946).
- `LayerNorm2d`: LayerNorm over the channels of a (B, C, H, W) map (ConvNeXt).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.drop_path import DropPath
from bestiary.layers.mlp import make_activation
from bestiary.layers.norms2d import make_norm2d


def conv_activation(name: str) -> nn.Module:
    """`make_activation` plus the clipped activations mobile CNNs use (ReLU6: the clip keeps
    activations in a range that low-precision arithmetic represents well)."""
    if name == "relu6":
        return nn.ReLU6()
    if name == "hardswish":
        return nn.Hardswish()
    return make_activation(name)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor` (hardware likes multiples of 8), never
    going more than 10% below `value`. This is the rule MobileNet and EfficientNet use when they
    scale widths."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


class ConvNormAct(nn.Sequential):
    """Conv2d (no bias: the BatchNorm's shift replaces it) -> BatchNorm2d -> activation.

    `padding` defaults to "same" for odd kernels at stride 1: (k - 1) // 2. `norm` is a kind of
    `make_norm2d` ("batch", "layer", "instance", "group" with `norm_groups` groups, "none").
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        groups: int = 1,
        activation: str = "relu",
        bn_eps: float = 1e-5,
        padding: int | None = None,
        norm: str = "batch",
        norm_groups: int = 8,
    ):
        padding = (kernel_size - 1) // 2 if padding is None else padding
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(out_channels, eps=bn_eps)
            if norm == "batch"
            else make_norm2d(norm, out_channels, norm_groups),
            conv_activation(activation),
        )


class SqueezeExcite(nn.Module):
    """Scale each channel by a gate in (0, 1) computed from the globally pooled feature map.

    (B, C, H, W) -> pool (B, C, 1, 1) -> 1x1 conv to `squeeze_channels` -> act -> 1x1 conv to C
    -> sigmoid -> multiply. The gate lets the block say "this image needs channel c".
    """

    def __init__(self, channels: int, squeeze_channels: int, activation: str = "relu"):
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze_channels, 1)
        self.act = conv_activation(activation)
        self.expand = nn.Conv2d(squeeze_channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.adaptive_avg_pool2d(x, 1)  # (B, C, 1, 1)
        gate = self.expand(self.act(self.reduce(gate))).sigmoid()  # (B, C, 1, 1)
        return x * gate


class InvertedResidual(nn.Module):
    """MBConv: 1x1 expand -> kxk depthwise -> (squeeze-excite) -> 1x1 project, residual if shapes match.

    "Inverted" because the residual connects the thin ends and the block widens in the middle;
    "linear bottleneck" because the projection has no activation (a ReLU on a thin layer destroys
    information). `se_channels` > 0 adds squeeze-excite (EfficientNet: a quarter of the block input).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: float,
        kernel_size: int = 3,
        activation: str = "relu6",
        se_channels: int = 0,
        drop_path: float = 0.0,
        bn_eps: float = 1e-5,
    ):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        hidden = int(round(in_channels * expand_ratio)) if expand_ratio != 1 else in_channels
        self.use_residual = stride == 1 and in_channels == out_channels
        layers: list[nn.Module] = []
        if expand_ratio != 1:
            layers.append(ConvNormAct(in_channels, hidden, 1, activation=activation, bn_eps=bn_eps))
        layers.append(
            ConvNormAct(
                hidden, hidden, kernel_size, stride, groups=hidden, activation=activation, bn_eps=bn_eps
            )
        )
        if se_channels > 0:
            layers.append(SqueezeExcite(hidden, se_channels, activation=activation))
        # the linear bottleneck: conv + BN, no activation
        layers.append(ConvNormAct(hidden, out_channels, 1, activation="identity", bn_eps=bn_eps))
        self.block = nn.Sequential(*layers)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + self.drop_path(out) if self.use_residual else out


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel dimension of a (B, C, H, W) map, at every pixel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)  # (B, C, H, W)
