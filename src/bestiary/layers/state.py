"""The decoding state of a recurrent or state-space mixer: a fixed number of tensors, whatever the
length of the text read so far.

Attention remembers every past key and value (`KVCache`). An RNN, an SSM, RWKV or DeltaNet
compress the whole past into a state of fixed size (an LSTM's (h, c), Mamba's (conv window, SSM
state), DeltaNet's fast-weight matrix): decoding a token costs the same at position 10 and at
position 10,000. Each such mixer returns a `RecurrentState` from `init_cache(batch)`:

    state = mixer.init_cache(batch)
    y = mixer(x, cache=state)          # reads state["h"], writes the new one back

(Hyena is the one exception: its filters are as long as the text, so its state holds the history
of its long-convolution inputs and grows; see `layers/hyena.py`.)

Tensors start as None ("nothing read yet": the mixer uses its zero / initial state), so a cache
can be made before the model's device and dtype are known. The state checks what a wrong cache
would otherwise turn into silent garbage:

- it belongs to the mixer that made it (a cache from another model or layer is refused);
- it was made for this batch size;
- every tensor written back is finite: a state that overflows in a long rollout raises
  `NonFiniteStateError` at the step where it happened (the model adds which layer), instead of
  NaN logits a thousand tokens later.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


class NonFiniteStateError(FloatingPointError):
    """A recurrent state that became inf or NaN while decoding."""


class RecurrentState:
    """One mixer's fixed-size decoding state: named tensors (None until first written).

    owner: the mixer that made it (`init_cache`). batch: the batch size it was made for.
    names: the tensors this mixer keeps, e.g. ("conv", "ssm").
    """

    def __init__(self, owner: nn.Module, batch: int, names: tuple[str, ...]):
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        self._owner = weakref.ref(owner)
        self.owner_name = type(owner).__name__
        self.batch = batch
        self.length = 0  # positions read so far
        self._tensors: dict[str, torch.Tensor | None] = {name: None for name in names}

    def __len__(self) -> int:
        return self.length

    def check(self, owner: nn.Module, x: torch.Tensor) -> None:
        """Refuse a cache made by another mixer, or for another batch size, before it is read."""
        if self._owner() is not owner:
            raise ValueError(
                f"this cache was made by another {self.owner_name} (another layer or model): make one "
                f"for this model with model.init_cache(batch)"
            )
        if x.shape[0] != self.batch:
            raise ValueError(
                f"this cache was made for batch {self.batch}, but the input has batch {x.shape[0]}"
            )

    def __getitem__(self, name: str) -> torch.Tensor | None:
        return self._tensors[name]

    def __setitem__(self, name: str, value: torch.Tensor) -> None:
        if name not in self._tensors:
            raise KeyError(f"{self.owner_name} keeps {tuple(self._tensors)}, not {name!r}")
        if not bool(torch.isfinite(value).all()):  # one sync per layer and step, only when decoding
            raise NonFiniteStateError(
                f"{self.owner_name}: the recurrent state {name!r} became inf/NaN after "
                f"{self.length} positions (lower the learning rate, check the inputs, or clip the state)"
            )
        self._tensors[name] = value

    def items(self) -> Iterator[tuple[str, torch.Tensor | None]]:
        return iter(self._tensors.items())

    def nbytes(self) -> int:
        """Memory held, in bytes: constant in the number of positions read."""
        return sum(t.numel() * t.element_size() for t in self._tensors.values() if t is not None)

    def __repr__(self) -> str:
        shapes = {k: None if v is None else tuple(v.shape) for k, v in self._tensors.items()}
        return f"RecurrentState({self.owner_name}, batch={self.batch}, length={self.length}, {shapes})"


def zeros_or(state: RecurrentState | None, name: str, like: Any) -> Any:
    """state[name], or `like()` (the mixer's initial state) when there is no state or nothing in it."""
    value = None if state is None else state[name]
    return like() if value is None else value
