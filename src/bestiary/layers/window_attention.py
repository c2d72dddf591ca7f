"""Window attention with a learned relative position bias, and the shifted-window mask (Swin).

"Swin Transformer: Hierarchical Vision Transformer using Shifted Windows" (Liu et al., 2021,
arXiv:2103.14030).

Self-attention over all H*W tokens costs (HW)^2; inside non-overlapping w x w windows it costs
HW * w^2, linear in the image size. Shifting the window grid by w/2 every other block lets
information cross window borders. Instead of an absolute position embedding, every head learns a
bias B[dy, dx] for each relative offset (dy, dx) in [-(w-1), w-1]^2, added to the attention logits.
"""

from __future__ import annotations

import torch
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
    """Additive mask (nW, w*w, w*w): 0 where two tokens came from the same image region, -100 where
    the cyclic shift put tokens from opposite borders into one window (they must not attend).
    -100 rather than -inf, as in the reference implementation: exp(-100) is 0 in float32 anyway."""
    region = torch.zeros(1, H, W, 1, device=device)
    label = 0
    for rows in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
        for cols in (slice(0, -window), slice(-window, -shift), slice(-shift, None)):
            region[:, rows, cols, :] = label
            label += 1
    labels = window_partition(region, window).squeeze(-1)  # (nW, w*w)
    different = labels[:, None, :] != labels[:, :, None]  # (nW, w*w, w*w)
    return different.float() * -100.0


class WindowAttention(MultiHeadAttention):
    """Multi-head self-attention inside each window, plus the relative position bias.

    The q/k/v/out projections and the attention itself are `MultiHeadAttention`'s; what Swin adds
    is the learned bias table, turned into an additive `attn_bias` (plus the shifted-window mask).
    x (B*nW, N = w*w, C) -> (B*nW, N, C). `mask` (nW, N, N) is the shifted-window mask or None.
    """

    def __init__(self, dim: int, n_heads: int, window: int, qkv_bias: bool = True):
        if dim % n_heads:
            raise ValueError(f"dim={dim} must be divisible by n_heads={n_heads}")
        super().__init__(dim, n_heads, bias=qkv_bias)
        if not qkv_bias:  # qkv_bias only drops the q/k/v biases: Swin's output projection keeps one
            self.out_proj = nn.Linear(dim, dim)
        self.window = window
        # one learned bias per head and per relative offset; the paper initialises it near zero
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, n_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def position_bias(self, window: int) -> torch.Tensor:
        """(heads, w*w, w*w) bias for an actual window size `window` <= self.window."""
        index = relative_position_index(window, self.window, self.relative_position_bias_table.device)
        bias = self.relative_position_bias_table[index.flatten()]  # (N*N, heads)
        return bias.view(window * window, window * window, -1).permute(2, 0, 1)  # (heads, N, N)

    def forward(self, x: torch.Tensor, window: int, mask: torch.Tensor | None = None) -> torch.Tensor:
        Bw, N, _ = x.shape
        bias = self.position_bias(window).unsqueeze(0)  # (1, heads, N, N)
        if mask is not None:  # windows are batch-major: window i of every image gets mask[i]
            n_windows = mask.shape[0]
            bias = bias.view(1, 1, self.n_heads, N, N) + mask.view(1, n_windows, 1, N, N)  # (1, nW, h, N, N)
            bias = bias.expand(Bw // n_windows, -1, -1, -1, -1).reshape(Bw, self.n_heads, N, N)
        return super().forward(x, attn_bias=bias)  # (B*nW, N, C)
