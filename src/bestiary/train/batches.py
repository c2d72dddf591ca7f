"""Batches indexed by number, and the helpers that shard and move them.

**The data contract of the Trainer.** Training data is a *global* batch stream, addressed by the
micro-batch index ``i = step * grad_accum_steps + micro``:

- a callable ``get_batch(i) -> batch`` (preferred: random access, so a resumed run asks for batch
  ``i`` directly and gets exactly what the uninterrupted run got), e.g. :class:`ShuffledBatches`;
- or any iterable of batches (a list, a ``DataLoader``); it is restarted when exhausted and, on
  resume, fast-forwarded by skipping the batches already used. That is exact only if iterating it
  again yields the same sequence (a list, or a DataLoader with a seeded ``generator``).

Under ``torchrun`` every process computes the same global batch and keeps its own slice along dim 0
(:func:`shard_batch`), the way ``DistributedSampler`` gives each rank a disjoint part of the data.
So 1 process and N processes see exactly the same examples per step -- the property that makes
"N GPUs = 1 big GPU" testable. (Loading the full global batch on every rank costs a little I/O;
for the toy-to-medium data of this project that is a fair price for the simplicity.)

A batch is a tensor, a tuple/list ``(inputs..., target)`` or a dict of tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from bestiary.data.loader import ArrayLoader


class ShuffledBatches(ArrayLoader):
    """Random-access mini-batches over in-memory tensors, reshuffled every epoch.

    ``batches(i)`` returns batch ``i`` of an endless stream: epoch ``e = i // len(batches)`` uses the
    permutation drawn from a private generator seeded with ``(seed, e)``, never the global RNG, so the
    order depends only on ``i`` -- not on dropout, evaluation or how many times the run was resumed.
    The last incomplete batch of an epoch is dropped (every batch has exactly ``batch_size`` rows,
    which gradient accumulation and data parallelism rely on). It is `bestiary.data.ArrayLoader`
    with ``drop_last=True``, called by index (`ArrayLoader.batch`).

    >>> data = ShuffledBatches(torch.randn(100, 3), torch.randint(0, 2, (100,)), batch_size=10)
    >>> x, y = data(0)      # x: (10, 3), y: (10,)
    """

    def __init__(self, *tensors: torch.Tensor, batch_size: int, seed: int = 0) -> None:
        if not tensors:
            raise ValueError("ShuffledBatches needs at least one tensor")
        if not all(isinstance(t, torch.Tensor) for t in tensors):
            raise TypeError(f"ShuffledBatches takes tensors, got {[type(t).__name__ for t in tensors]}")
        n = tensors[0].shape[0]
        if any(t.shape[0] != n for t in tensors):
            raise ValueError(
                f"all tensors need the same first dimension, got {[t.shape[0] for t in tensors]}"
            )
        if not 1 <= batch_size <= n:
            raise ValueError(f"batch_size must be in [1, {n}] (the number of examples), got {batch_size}")
        super().__init__(*tensors, batch_size=batch_size, shuffle=True, seed=seed, drop_last=True)

    def __call__(self, index: int) -> tuple[torch.Tensor, ...]:
        return self.batch(index)


def shard_batch(batch: Any, rank: int, world_size: int) -> Any:
    """This rank's slice (along dim 0) of every tensor in a global batch: rank r gets rows [r*b, (r+1)*b)."""
    if world_size == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.ndim == 0 or batch.shape[0] % world_size:
            raise ValueError(
                f"a global batch of {tuple(batch.shape)} can't be split evenly over {world_size} processes: "
                f"dim 0 must be a multiple of world_size"
            )
        per_rank = batch.shape[0] // world_size
        return batch[rank * per_rank : (rank + 1) * per_rank]
    if isinstance(batch, Mapping):
        return {k: shard_batch(v, rank, world_size) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(shard_batch(v, rank, world_size) for v in batch)
    return batch  # numbers, strings: shared by every rank


def to_device(batch: Any, device: torch.device | str) -> Any:
    """Move every tensor of a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def batch_size_of(batch: Any) -> int:
    """Number of examples in a batch (dim 0 of its first tensor)."""
    if isinstance(batch, torch.Tensor):
        return batch.shape[0] if batch.ndim else 1
    values = batch.values() if isinstance(batch, Mapping) else batch
    for v in values:
        if isinstance(v, torch.Tensor) and v.ndim:
            return v.shape[0]
    raise ValueError("can't tell the batch size: the batch holds no tensor with a batch dimension")
