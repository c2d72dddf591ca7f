"""Temporal Convolutional Network: stacked causal, dilated 1-D convolutions with residuals.

Paper: "An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence
Modeling" (Bai, Kolter & Koltun, 2018, arXiv:1803.01271). Dilated causal convolutions come from
WaveNet (van den Oord et al., 2016, arXiv:1609.03499).

Causal: the output at time t depends only on inputs at times <= t (pad on the left only).
Dilated: level i skips 2^i - 1 inputs between kernel taps, so the receptive field grows
exponentially with depth: 1 + 2 (k - 1) (2^L - 1) steps for L levels of two convs each.
Each residual block is two (weight-normalised) causal convs with ReLU and dropout, plus a 1x1
conv on the shortcut when the width changes. Decoding step by step (`init_cache`) keeps only the
last (k - 1) * dilation inputs of each conv: a TCN generates with a fixed-size state.

Sequence model: (B, T, in_dim) -> (B, T, d_model); `num_features` = d_model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import Cache
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 8
    d_model: int = 64  # channels of every level
    n_layers: int = 4  # levels; level i has dilation 2^i
    kernel_size: int = 3
    dropout: float = 0.0
    use_weight_norm: bool = True  # the paper's choice; set False for plain convs


class TCNCache(Cache):
    """What a TCN needs to continue a sequence: for every causal conv, the last (k - 1) * dilation
    inputs it saw (before the first token, the zeros of its left padding), and how many positions
    have been read. Feeding a sequence whole or in pieces gives the same outputs. A `Cache`, so it
    knows its model and batch size (`check`)."""

    def __init__(self, n_convs: int, batch: int, owner: nn.Module):
        super().__init__([None] * n_convs, owner=owner, batch=batch)

    @property
    def pasts(self) -> list[torch.Tensor | None]:
        """One per conv: (B, C_in, (k - 1) * dilation), or None before the first step."""
        return self.layers

    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.layers if p is not None)


class CausalConv1d(nn.Module):
    """Conv1d that pads (k - 1) * dilation zeros on the left only: no peeking at the future.

    `slot`: this conv's index in a `TCNCache`. With a cache, the left padding is the end of the
    previous inputs instead of zeros."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        dilation: int,
        use_weight_norm: bool,
        slot: int,
    ):
        super().__init__()
        self.left_pad, self.slot = (kernel_size - 1) * dilation, slot
        conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation)
        self.conv = weight_norm(conv) if use_weight_norm else conv

    def forward(self, x: torch.Tensor, cache: TCNCache | None = None) -> torch.Tensor:
        if cache is None:
            return self.conv(F.pad(x, (self.left_pad, 0)))  # (B, C_out, T)
        past = cache.pasts[self.slot]
        if past is None:  # the first step: the past is the zero padding
            past = x.new_zeros(x.shape[0], x.shape[1], self.left_pad)
        x = torch.cat([past, x], dim=-1)  # (B, C_in, left_pad + T)
        cache.pasts[self.slot] = x[..., x.shape[-1] - self.left_pad :]  # what the next step looks back on
        return self.conv(x)  # (B, C_out, T)


class TemporalBlock(nn.Module):
    def __init__(self, in_channels: int, channels: int, config: Config, dilation: int, index: int):
        super().__init__()
        k, wn = config.kernel_size, config.use_weight_norm
        self.conv1 = CausalConv1d(in_channels, channels, k, dilation, wn, slot=2 * index)
        self.conv2 = CausalConv1d(channels, channels, k, dilation, wn, slot=2 * index + 1)
        self.dropout = nn.Dropout(config.dropout)
        self.shortcut = nn.Conv1d(in_channels, channels, 1) if in_channels != channels else nn.Identity()

    def forward(self, x: torch.Tensor, cache: TCNCache | None = None) -> torch.Tensor:
        out = self.dropout(F.relu(self.conv1(x, cache)))
        out = self.dropout(F.relu(self.conv2(out, cache)))
        return F.relu(out + self.shortcut(x))


@register(
    "tcn",
    family="convolutional",
    config=Config,
    summary="Temporal Convolutional Network: causal dilated 1-D convs with residual blocks.",
    paper="An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling",
    year=2018,
    arxiv="1803.01271",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=4, d_model=8, n_layers=2, kernel_size=2),
    outputs="features (B, T, d_model)",
)
class TCN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.num_features = config.d_model
        self.blocks = nn.ModuleList(
            TemporalBlock(config.in_dim if i == 0 else config.d_model, config.d_model, config, 2**i, index=i)
            for i in range(config.n_layers)
        )

    @property
    def receptive_field(self) -> int:
        """How many past steps (including the current one) one output can see."""
        c = self.config
        return 1 + 2 * (c.kernel_size - 1) * (2**c.n_layers - 1)

    def init_cache(self, batch: int = 1) -> TCNCache:
        """An empty cache for decoding step by step (it holds O(receptive field) inputs, not the
        whole past)."""
        return TCNCache(n_convs=2 * self.config.n_layers, batch=batch, owner=self)

    def forward_features(self, x: torch.Tensor, *, cache: TCNCache | None = None) -> torch.Tensor:
        """A sequence model has no head: its features are its output (B, T, d_model)."""
        return self.forward(x, cache=cache)

    def forward(self, x: torch.Tensor, *, cache: TCNCache | None = None) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model). With `cache`, x holds the positions after those
        already read, and the convs look back into the cache instead of into zero padding."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        if cache is not None:
            cache.check(self, x.shape[0])
        x = x.transpose(1, 2)  # convs want channels first: (B, in_dim, T)
        for block in self.blocks:
            x = block(x, cache)  # (B, d_model, T)
        if cache is not None:
            cache.advance(x.shape[-1])
        return x.transpose(1, 2)  # (B, T, d_model)
