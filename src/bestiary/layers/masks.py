"""Attention masks: which key may each query look at.

Every mask here is boolean with True = "may attend", shaped to broadcast against attention
scores (B, H, Tq, Tk). Masks compose with `&`.

- causal: query i sees keys j <= i ("Attention Is All You Need", Vaswani et al., 2017, arXiv:1706.03762).
- padding: no query looks at a padding key.
- sliding window: query i sees only the last `window` keys (Longformer, Beltagy et al., 2020,
  arXiv:2004.05150; Mistral 7B, Jiang et al., 2023, arXiv:2310.06825).

When keys outnumber queries (generation with a KV cache: the new queries are the LAST Tq positions
of the Tk keys) the masks are end-aligned: query i sits at absolute position Tk - Tq + i.
"""

from __future__ import annotations

import torch


def causal_mask(t_query: int, t_key: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (Tq, Tk) mask, True where query i may attend key j (j <= i, end-aligned)."""
    offset = t_key - t_query  # > 0 when cached keys precede the new queries
    return torch.ones(t_query, t_key, dtype=torch.bool, device=device).tril(diagonal=offset)


def sliding_window_mask(
    t_query: int, t_key: int, window: int, device: torch.device | None = None
) -> torch.Tensor:
    """Causal mask that also hides keys more than `window - 1` positions back: (Tq, Tk) bool.

    With window=w each query sees itself and the w - 1 keys before it.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    q_pos = torch.arange(t_key - t_query, t_key, device=device)[:, None]  # (Tq, 1) absolute positions
    k_pos = torch.arange(t_key, device=device)[None, :]  # (1, Tk)
    distance = q_pos - k_pos  # (Tq, Tk): how far back the key is
    return (distance >= 0) & (distance < window)


def padding_mask(keep: torch.Tensor) -> torch.Tensor:
    """(B, Tk) bool/0-1 tensor (True/1 = real token) -> (B, 1, 1, Tk) mask for attention scores."""
    if keep.dim() != 2:
        raise ValueError(f"expected a padding mask of shape (B, T), got {tuple(keep.shape)}")
    return keep.bool()[:, None, None, :]  # (B, 1, 1, Tk): same for every head and every query


def combine_masks(*masks: torch.Tensor | None) -> torch.Tensor | None:
    """AND of the given masks (None entries are ignored); None when all are None."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else out & m
    return out
