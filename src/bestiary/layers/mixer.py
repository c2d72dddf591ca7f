"""The token-mixer contract: what every sequence-mixing layer in Bestiary implements.

A transformer, a state-space model and a recurrent network differ in ONE place: how information
moves between positions. Softmax attention compares every pair of positions; an SSM or an RNN
carries a state forward; a pooling layer averages neighbours. Everything around that (norms,
residuals, the MLP that works on each position alone) is the same `Block`. So every such layer is a
*token mixer*:

    mixer(x, *, cache=None) -> y              x, y: (B, T, D)
    mixer.init_cache(batch) -> cache          what the mixer remembers between decoding steps

- With `cache`, `x` holds only the positions after those already seen; the mixer reads the past
  from the cache, updates it in place, and returns outputs for the new positions. Feeding a
  sequence whole or in pieces gives the same outputs (a test checks this for every mixer).
- Attention's cache grows (`KVCache`: every past key and value); a recurrent or state-space
  mixer's cache is a fixed-size state, so decoding costs O(1) memory per token.
- A mixer with several equivalent forms (parallel, chunkwise, recurrent) offers them as a `mode`
  option and uses the recurrent one for single-token steps.
- Positions, windows and causal masks are chosen when the mixer is built, never passed per call.
  Padding (`mask=`) is the one per-call extra a mixer may accept, because it belongs to the data.
- Bidirectional mixers (a ViT's attention, pooling) need no cache: their `init_cache` raises.

How to add a mixer: CONTRIBUTING.md, "Add a mixer".
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class TokenMixer(Protocol):
    """The interface of a token mixer (a Protocol: mixers don't inherit from it, they match it)."""

    def __call__(self, x: torch.Tensor, *, cache: Any = None) -> torch.Tensor: ...

    def init_cache(self, batch: int) -> Any: ...


def can_decode(mixer: Any) -> bool:
    """True if the mixer can run token by token (it has an `init_cache` that doesn't refuse)."""
    if not callable(getattr(mixer, "init_cache", None)):
        return False
    try:
        mixer.init_cache(1)
    except (ValueError, NotImplementedError):
        return False
    return True
