"""A key/value cache for autoregressive decoding.

Generating token t+1 with a decoder only needs the new query; the keys and values of positions
0..t do not change (causal attention: the past never sees the future). So each attention layer
stores them once and appends one entry per step, turning an O(T²) re-computation per token into
O(T). Used by `bestiary.models.transformer.decoder_only` through `MultiHeadAttention(kv_cache=...)`.

    cache = KVCache(n_layers)
    logits = model(prompt, kv_cache=cache)             # fills positions 0..T-1
    logits = model(next_token[:, None], kv_cache=cache)  # start_pos = cache.length
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer keys and values, each (B, H_kv, T_cached, head_dim), grown by `update`.

    Keys are stored AFTER the rotary embedding is applied (positions are absolute), and before
    grouped-query heads are repeated (the cache stays n_heads / n_kv_heads times smaller).
    """

    def __init__(self, n_layers: int):
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.n_layers = n_layers
        self.keys: list[torch.Tensor | None] = [None] * n_layers
        self.values: list[torch.Tensor | None] = [None] * n_layers

    def layer_length(self, layer_idx: int) -> int:
        k = self.keys[layer_idx]
        return 0 if k is None else k.shape[-2]

    @property
    def length(self) -> int:
        """Number of positions cached so far (read from layer 0, which is updated first)."""
        return self.layer_length(0)

    def __len__(self) -> int:
        return self.length

    def update(self, layer_idx: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new k, v (B, H_kv, T_new, D) for one layer; return all keys/values so far."""
        if not 0 <= layer_idx < self.n_layers:
            raise IndexError(f"layer_idx {layer_idx} out of range for a cache of {self.n_layers} layers")
        if k.shape != v.shape or k.dim() != 4:
            raise ValueError(
                f"expected k and v of the same shape (B, H, T, D), got {tuple(k.shape)}, {tuple(v.shape)}"
            )
        old_k, old_v = self.keys[layer_idx], self.values[layer_idx]
        if old_k is not None:
            if old_k.shape[:2] != k.shape[:2] or old_k.shape[-1] != k.shape[-1]:
                raise ValueError(
                    f"layer {layer_idx}: cached keys have shape {tuple(old_k.shape)}, new keys {tuple(k.shape)}"
                )
            k = torch.cat([old_k, k], dim=-2)  # (B, H_kv, T_old + T_new, D)
            v = torch.cat([old_v, v], dim=-2)
        self.keys[layer_idx], self.values[layer_idx] = k, v
        return k, v

    def crop(self, length: int) -> None:
        """Forget every position >= `length` (e.g. rejected draft tokens in speculative decoding)."""
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        for i in range(self.n_layers):
            if self.keys[i] is not None:
                self.keys[i] = self.keys[i][..., :length, :]
                self.values[i] = self.values[i][..., :length, :]

    def reset(self) -> None:
        self.keys = [None] * self.n_layers
        self.values = [None] * self.n_layers

    def nbytes(self) -> int:
        """Memory held by the cache, in bytes."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values if t is not None)
