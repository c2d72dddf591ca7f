"""Helper for test_trainer_fsdp.py (not a test): the script each torchrun process runs.

    torchrun --standalone --nproc_per_node=2 fsdp_train_worker.py OUT_DIR

Three FSDP2 runs in one process group, all on the same global batches:

1. ``full``: steps 1..MAX_STEPS uninterrupted (checkpoints every RESUME_AT steps, which must not change it);
2. ``first``: steps 1..RESUME_AT, then a sharded checkpoint in OUT_DIR/ckpt;
3. ``resumed``: a fresh model and optimizer, ``resume=True`` from that checkpoint, up to MAX_STEPS.

Each rank writes OUT_DIR/rank<r>.json: the histories, its own number of parameter values, and whether
its shards of the resumed run's weights and optimizer state equal the uninterrupted run's bit for bit.

``make_trainer`` is shared with the test, which runs the same thing in a single process.
"""

from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.fsdp import FSDPModule

from bestiary.train import ShuffledBatches, Trainer, muon_with_adamw, warmup_cosine
from bestiary.train.sharded import local_numel, local_part

MAX_STEPS, RESUME_AT = 6, 3


class ResidualMLP(nn.Module):
    """Blocks in an nn.ModuleList, as a transformer holds its layers: FSDP2 shards each block as a unit."""

    def __init__(self, d_in: int = 4, width: int = 32, n_blocks: int = 2, n_out: int = 3) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.Linear(width, width), nn.GELU()) for _ in range(n_blocks)
        )
        self.head = nn.Linear(width, n_out)  # 3 rows: sharded 2 + 1, so the halves are not exact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.head(h)


def make_trainer(ckpt_dir=None, max_steps=MAX_STEPS, resume=False, parallel="fsdp2") -> Trainer:
    torch.manual_seed(0)  # the same initial weights on every rank (FSDP2 keeps each rank's own rows)
    model = ResidualMLP()
    # An OptimizerChain: Muon for the blocks' hidden matrices, AdamW (fused) for everything else.
    optimizer = muon_with_adamw(model, lr=0.02, adamw_lr=0.01, muon_for=(nn.Linear,))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 4, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    # Global micro-batches of 8 rows: with 2 processes each rank trains on 4 of them.
    return Trainer(
        model, optimizer, ShuffledBatches(x, y, batch_size=8), loss_fn=F.cross_entropy,
        max_steps=max_steps, grad_accum_steps=2, clip_grad_norm=1.0, check_grads=True,
        lr_schedule=partial(warmup_cosine, warmup=2, total=MAX_STEPS), checkpoint_dir=ckpt_dir,
        checkpoint_every=RESUME_AT if ckpt_dir is not None else None, resume=resume, progress=False,
        parallel=parallel,
    )  # fmt: skip


def _optimizer_tensors(trainer: Trainer) -> dict[str, torch.Tensor]:
    """This rank's shards of every optimizer state tensor, by member, parameter and name."""
    return {
        f"{j}.{i}.{name}": local_part(value)
        for j, opt in enumerate(trainer.optimizer.optimizers)
        for i, param in enumerate(p for group in opt.param_groups for p in group["params"])
        for name, value in opt.state[param].items()
    }


def nan_message() -> str:
    """A NaN input at step 2 of an FSDP2 run: both ranks must raise the same error (and none hang)."""
    torch.manual_seed(0)
    model = ResidualMLP()
    x, y = torch.randn(8, 4), torch.zeros(8, dtype=torch.long)
    bad = torch.full_like(x, float("nan"))
    trainer = Trainer(
        model, torch.optim.AdamW(model.parameters(), lr=0.01), lambda i: (bad if i == 1 else x, y),
        loss_fn=F.cross_entropy, max_steps=3, check_grads=True, progress=False, parallel="fsdp2",
    )  # fmt: skip
    try:
        trainer.fit()
    except FloatingPointError as err:
        return f"{err} [stopped after step {trainer.step}]"
    return "no error"


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    full = make_trainer(out / "ckpt_full")
    full.fit()
    if full.world_size != 2:
        raise SystemExit(f"expected 2 processes, got world_size={full.world_size}")
    first = make_trainer(out / "ckpt", max_steps=RESUME_AT)
    first.fit()
    resumed = make_trainer(out / "ckpt", resume=True)
    resumed.fit()

    weights_equal = all(
        torch.equal(local_part(a), local_part(b))
        for a, b in zip(full.model.parameters(), resumed.model.parameters(), strict=True)
    )
    opt_a, opt_b = _optimizer_tensors(full), _optimizer_tensors(resumed)
    optimizer_equal = opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)
    total = sum(p.numel() for p in full.model.parameters())  # a DTensor's numel is the global one
    result = {
        "world_size": full.world_size,
        "full": full.history,
        "first": first.history,
        "resumed": resumed.history,
        "local_numel": local_numel(full.model),
        "total_numel": total,
        "param_types": sorted({type(p).__name__ for p in full.model.parameters()}),
        "weights_equal": weights_equal,
        "optimizer_equal": optimizer_equal,
        "optimizer_tensors": len(opt_a),
        "fsdp_units": sum(isinstance(m, FSDPModule) for m in full.model.modules()),
        "nan_message": nan_message(),
    }
    (out / f"rank{full.rank}.json").write_text(json.dumps(result))
