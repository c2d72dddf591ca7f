"""``torchrun`` support: find out whether we are one of several processes, and join the group.

``torchrun --nproc_per_node=N script.py`` starts N copies of the script and tells each who it is
through environment variables: ``RANK`` (0..N-1 over all machines), ``LOCAL_RANK`` (index on this
machine, used to pick the GPU) and ``WORLD_SIZE`` (N), plus ``MASTER_ADDR``/``MASTER_PORT`` for the
rendezvous. A plain ``python script.py`` sets none of them, and everything below degrades to
"rank 0 of 1".

The backend: NCCL talks GPU-to-GPU directly (NVLink / InfiniBand); Gloo runs on CPUs (and is what
the tests use). Both implement the same collectives (all_reduce, broadcast, ...), which is all DDP needs.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 is the one that prints and writes checkpoints."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def env_world() -> tuple[int, int, int]:
    """(rank, local_rank, world_size) from torchrun's environment; (0, 0, 1) when not launched by it."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and "RANK" not in os.environ:
        raise RuntimeError("WORLD_SIZE > 1 but RANK is not set: launch with torchrun")
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    return rank, local_rank, world_size


def setup(backend: str | None = None) -> DistInfo:
    """Join the process group if launched by torchrun (idempotent); return who we are and our device.

    GPU available -> NCCL and ``cuda:LOCAL_RANK``; otherwise Gloo and the CPU. The group is destroyed
    at exit if this function created it.
    """
    rank, local_rank, world_size = env_world()
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank % torch.cuda.device_count()}") if cuda else torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(device)  # before init, so NCCL binds each process to its own GPU
        dist.init_process_group(backend=backend or ("nccl" if cuda else "gloo"))
        atexit.register(cleanup)
    if dist.is_initialized():
        rank, world_size = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank, local_rank, world_size, device)


def cleanup() -> None:
    """Leave the process group (safe to call twice)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """Average a tensor over all processes (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / dist.get_world_size()
