"""Caches for incremental decoding: what a token mixer remembers between generation steps.

Generating token t+1 only needs the new query; everything about positions 0..t is already known.
Each mixer keeps what it needs from the past in its own cache, made by `mixer.init_cache(batch)`:

- softmax attention keeps every past key and value (`KVCache`): memory grows by one entry per token,
  and a decoding step costs O(t) instead of recomputing O(t²);
- a recurrent or state-space mixer keeps a fixed-size state (its own small class): O(1) per token.

A model holds one cache per layer in a `Cache`, which also counts the positions seen so far (the
absolute position of the next token, which learned position tables and RoPE need):

    cache = model.init_cache(batch=1)
    logits = model(prompt, cache=cache)               # fills positions 0..T-1
    logits = model(next_token[:, None], cache=cache)  # position T, reads the rest from the cache
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import torch


class KVCache:
    """One attention layer's keys and values, each (B, H_kv, T_cached, head_dim), grown by `update`.

    Keys are stored AFTER the rotary embedding is applied (positions are absolute), and before
    grouped-query heads are repeated (the cache stays n_heads / n_kv_heads times smaller).
    """

    def __init__(self) -> None:
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None

    @property
    def length(self) -> int:
        """Number of positions cached so far."""
        return 0 if self.keys is None else self.keys.shape[-2]

    def __len__(self) -> int:
        return self.length

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append new k, v (B, H_kv, T_new, D); return all keys and values so far."""
        if k.shape != v.shape or k.dim() != 4:
            raise ValueError(
                f"expected k and v of the same shape (B, H, T, D), got {tuple(k.shape)}, {tuple(v.shape)}"
            )
        if self.keys is not None:
            if self.keys.shape[:2] != k.shape[:2] or self.keys.shape[-1] != k.shape[-1]:
                raise ValueError(
                    f"cached keys have shape {tuple(self.keys.shape)}, new keys {tuple(k.shape)}"
                )
            k = torch.cat([self.keys, k], dim=-2)  # (B, H_kv, T_old + T_new, D)
            v = torch.cat([self.values, v], dim=-2)
        self.keys, self.values = k, v
        return k, v

    def crop(self, length: int) -> None:
        """Forget every position >= `length` (e.g. rejected draft tokens in speculative decoding)."""
        if self.keys is not None:
            self.keys, self.values = self.keys[..., :length, :], self.values[..., :length, :]

    def nbytes(self) -> int:
        """Memory held, in bytes."""
        return sum(t.numel() * t.element_size() for t in (self.keys, self.values) if t is not None)


class Cache:
    """A model's decoding memory: one per-layer cache for each mixer, plus the positions seen.

    `length` is the absolute position of the next token. The model advances it after each forward
    (`advance`), so it is right for any mixer, including those whose state does not grow.
    """

    def __init__(self, layers: Sequence[Any], *, owner: Any = None, batch: int | None = None):
        self.layers = list(layers)
        self.length = 0
        # the model that made it and the batch size it was made for, checked by `check` (optional:
        # a cache made without them checks nothing)
        self._owner = None if owner is None else weakref.ref(owner)
        self.owner_name = None if owner is None else type(owner).__name__
        self.batch = batch

    def check(self, owner: Any, batch: int) -> None:
        """Refuse a cache made by another model, or for another batch size, before anything is read:
        another model's keys or states would give plausible-looking garbage."""
        if self._owner is not None and self._owner() is not owner:
            raise ValueError(
                f"this cache was made by another {self.owner_name}: make one for this model with "
                "model.init_cache(batch)"
            )
        if self.batch is not None and batch != self.batch:
            raise ValueError(f"this cache was made for batch {self.batch}, but the input has batch {batch}")

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Any:
        return self.layers[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def advance(self, n_tokens: int) -> None:
        self.length += n_tokens

    def crop(self, length: int) -> None:
        """Forget every position >= `length`. Only caches that keep every position (KV caches) can
        do this; a fixed-size recurrent state has already mixed the positions together."""
        if not 0 <= length <= self.length:
            raise ValueError(f"length must be in 0..{self.length}, got {length}")
        for layer in self.layers:
            if not callable(getattr(layer, "crop", None)):
                raise TypeError(
                    f"a {type(layer).__name__} cannot forget positions (it keeps a running state)"
                )
            layer.crop(length)
        self.length = length

    def nbytes(self) -> int:
        """Memory held by every layer's cache, in bytes."""
        return sum(layer.nbytes() for layer in self.layers)
