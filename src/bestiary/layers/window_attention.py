"""Window attention with a learned relative position bias, and the shifted-window mask (Swin).

"Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (Liu et al., 2021,
arXiv:2103.14030).

Self-attention over all H*W tokens costs (HW)^2; inside non-overlapping w x w windows it costs
HW * w^2, linear in the image size. Shifting the window grid by w/2 every other block lets
information cross window borders. Instead of an absolute position embedding, every head learns a
bias B[dy, dx] for each relative offset (dy, dx) in [-(w-1), w-1]^2, added to the attention logits.

`WindowAttention` is the whole Swin token mixer: partition, shift, attention, and back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nW, window * window, C), windows in row-major order."""
    B, H, W, C = x.shape
    x = x.view(B, H // window, window, W // window, window, C)  # (B, H/w, w, W/w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, C)  # (B*nW, w*w, C)


def window_reverse(windows: torch.Tensor, window: int, H: int, W: int) -> torch.Tensor:
    """Inverse of `window_partition`: (B * nW, window * window, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.view(-1, H // window, W // window, window, window, C)  # (B, H/w, W/w, w, w, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)  # (B, H, W, C)


def relative_position_index(window: int, table_window: int, device=None) -> torch.Tensor:
    """(w*w, w*w) indices into a ((2*tw - 1)^2)-row bias table, for every (query, key) pair.

    `table_window` is the window the table was built for; a smaller `window` (a feature map smaller
    than the window) uses the central part of the same table.
    """
    coords = torch.stack(
        torch.meshgrid(
            torch.arange(window, device=device), torch.arange(window, device=device), indexing="ij"
        )
    ).flatten(1)  # (2, w*w): (row, col) of each token
    rel = coords[:, :, None] - coords[:, None, :]  # (2, w*w, w*w): offsets in [-(w-1), w-1]
    rel = rel + (table_window - 1)  # shift to [0, 2*tw - 2]
    return rel[0] * (2 * table_window - 1) + rel[1]  # (w*w, w*w)


def shifted_window_mask(H: int, W: int, window: int, shift: int, device=None) -> torch.Tensor:
    """Boolean mask (nW, w*w, w*w), True where two tokens of a window may attend to each other:
    they came from the same image region. The cyclic shift puts tokens from opposite borders into
    one window; those pairs are False. (The reference implementation adds -100 to their scores
    instead of -inf; exp(-100) is 0 in float32 anyway.)"""
    region = torch.zeros(1, H, W, 1, device=device)
    label = 0
    for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # (nW, w*w)
    return labels[:, None, :] == labels[:, :, None]  # (nW, w*w, w*w)


class WindowAttention(MultiHeadAttention):
    """Swin's token mixer: self-attention inside (shifted) w x w windows of a (B, H, W, C) map.

    The q/k/v/out projections and the attention itself are `MultiHeadAttention`'s; what Swin adds
    is the learned relative position bias (a `score_bias`, looked up for the window size) and the
    partition of the map into windows. `shift` > 0 rolls the map by `shift` tokens up and left
    first, with the mask that keeps wrapped-around tokens apart. A map no bigger than the window
    is one window, with nothing to shift; a map that is not a multiple of the window is padded.
    x (B, H, W, C) -> (B, H, W, C).
    """

    def __init__(self, dim: int, n_heads: int, window_size: int, shift: int = 0, *, qkv_bias: bool = True):
        # qkv_bias only drops the q/k/v biases: Swin's output projection always keeps one
        super().__init__(dim, n_heads, qkv_bias=qkv_bias, out_bias=True, score_bias=self.position_bias)
        self.window_size, self.shift = window_size, shift
        # one learned bias per head and per relative offset; the paper initialises it near zero
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, n_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self, t_query: int, t_key: int, start: int) -> torch.Tensor:
        """(1, heads, N, N) bias for windows of N = w*w tokens, w <= window_size (the `score_bias`
        hook of `MultiHeadAttention`; a window attends to itself, so t_key = t_query)."""
        window = math.isqrt(t_query)
        index = relative_position_index(window, self.window_size, self.relative_position_bias_table.device)
        bias = self.relative_position_bias_table[index.flatten()]  # (N*N, heads)
        return bias.view(t_query, t_key, -1).permute(2, 0, 1).unsqueeze(0)  # (1, heads, N, N)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        B, H, W, C = x.shape
        # a feature map no bigger than the window is one window: nothing to shift
        window, shift = (min(H, W), 0) if min(H, W) <= self.window_size else (self.window_size, self.shift)
        pad_b, pad_r = (-H) % window, (-W) % window  # pad to whole windows (zeros after the norm)
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))  # (B, Hp, Wp, C)
        Hp, Wp = H + pad_b, W + pad_r
        mask = None
        if shift > 0:  # roll the grid up-left; the mask stops wrapped-around tokens from mixing
            x = torch.roll(x, shifts=(-shift, -shift), dims=(1, 2))
            mask = shifted_window_mask(Hp, Wp, window, shift, x.device)  # (nW, N, N)
            # windows are batch-major: window i of every image gets mask[i]
            mask = mask.repeat(B, 1, 1).unsqueeze(1)  # (B*nW, 1, N, N)
        windows = window_partition(x, window)  # (B*nW, N = w*w, C)
        windows = super().forward(windows, mask=mask)  # (B*nW, N, C)
        x = window_reverse(windows, window, Hp, Wp)  # (B, Hp, Wp, C)
        if shift > 0:
            x = torch.roll(x, shifts=(shift, shift), dims=(1, 2))
        return x[:, :H, :W, :]  # drop the padding
