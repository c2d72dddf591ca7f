"""An in-memory mini-batch loader: whole-tensor indexing, no per-item Python work.

`torch.utils.data.DataLoader` calls `__getitem__` once per example and then collates; for data
that already fits in memory as tensors that costs far more than the model on small problems.
`ArrayLoader` keeps the arrays as tensors (optionally on the GPU) and makes each batch with one
indexing operation per array.

    loader = ArrayLoader(X, y, batch_size=128, seed=0)
    for epoch in range(10):
        for xb, yb in loader:   # epoch e's order depends only on (seed, e): resumable
            ...
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["ArrayLoader", "to_tensor", "to_tensor_dataset"]


def to_tensor(array: Any, device: torch.device | str | None = None) -> torch.Tensor:
    """A NumPy array or tensor as a tensor (no copy for NumPy when possible), on `device` if given."""
    if isinstance(array, torch.Tensor):
        t = array
    elif isinstance(array, np.ndarray):
        # from_numpy shares memory; read-only or negatively-strided arrays need a copy first.
        if not array.flags.writeable or any(s < 0 for s in array.strides):
            array = array.copy()
        t = torch.from_numpy(array)
    else:
        t = torch.as_tensor(array)
    return t.to(device) if device is not None else t


def to_tensor_dataset(*arrays: Any) -> torch.utils.data.TensorDataset:
    """The arrays as a `torch.utils.data.TensorDataset` (for code that wants a standard Dataset)."""
    return torch.utils.data.TensorDataset(*(to_tensor(a) for a in arrays))


class ArrayLoader:
    """Shuffled mini-batches from in-memory arrays that share their first dimension.

    Args:
        *arrays: NumPy arrays or tensors with the same length N (e.g. images, labels).
        batch_size: examples per batch.
        shuffle: new random order each epoch; epoch e uses the permutation seeded by
            (seed, e), so the order never depends on how many batches were drawn before.
        seed: base seed of the shuffles.
        drop_last: skip a final batch smaller than batch_size (keeps shapes static).
        device: move the arrays there once, up front (batches are then made on that device).
        rank, world_size: for data-parallel training, each rank sees its own 1/world_size share of
            every epoch's permutation (disjoint across ranks; every rank gets the same number of
            batches because the tail that does not divide evenly is dropped).

    Iterating yields tuples of tensors (one per array), each (batch, ...). A single array yields
    a 1-tuple, so `for (xb,) in loader` works the same way.
    """

    def __init__(
        self,
        *arrays: Any,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        device: torch.device | str | None = None,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not arrays:
            raise ValueError("ArrayLoader needs at least one array")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.tensors = tuple(to_tensor(a, device) for a in arrays)
        lengths = {len(t) for t in self.tensors}
        if len(lengths) != 1:
            raise ValueError(f"all arrays must have the same length, got {[len(t) for t in self.tensors]}")
        self.n = lengths.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self._cached_epoch, self._cached_order = -1, torch.empty(0, dtype=torch.long)

    @property
    def num_examples(self) -> int:
        """Examples this rank sees per epoch."""
        return self.n // self.world_size if self.world_size > 1 else self.n

    def __len__(self) -> int:
        """Batches per epoch."""
        m = self.num_examples
        return m // self.batch_size if self.drop_last else -(-m // self.batch_size)

    def _order(self, epoch: int) -> torch.Tensor:
        device = self.tensors[0].device
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            order = torch.randperm(self.n, generator=g)  # (N,) drawn on CPU: same order on every device
        else:
            order = torch.arange(self.n)
        if self.world_size > 1:
            order = order[: self.num_examples * self.world_size][self.rank :: self.world_size]
        return order.to(device)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = self._order(self.epoch)
        self.epoch += 1  # advance now, so breaking out of a loop still moves to a fresh order
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]  # (batch,)
            yield tuple(t[idx] for t in self.tensors)

    def batch(self, index: int) -> tuple[torch.Tensor, ...]:
        """Batch `index` of the endless stream epoch 0, epoch 1, ... (random access).

        Batch i is the same whenever it is asked for, so a resumed run can ask for exactly the
        batch the uninterrupted run got (the Trainer's `get_batch(i)` contract).
        """
        if index < 0:
            raise IndexError(f"batch index must be >= 0, got {index}")
        epoch, within = divmod(index, len(self))
        if epoch != self._cached_epoch:  # consecutive indices share one epoch's permutation
            self._cached_epoch, self._cached_order = epoch, self._order(epoch)
        idx = self._cached_order[within * self.batch_size : (within + 1) * self.batch_size]  # (batch,)
        return tuple(t[idx] for t in self.tensors)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration use epoch `epoch`'s order (as DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def state_dict(self) -> dict[str, int]:
        """What a checkpoint needs to resume the same sequence of batches."""
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])
