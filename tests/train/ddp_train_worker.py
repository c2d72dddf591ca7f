"""Helper for test_trainer_distributed.py (not a test): the script each torchrun process runs.

    torchrun --standalone --nproc_per_node=2 ddp_train_worker.py CKPT_DIR ROWS_DIR

Each rank also writes the input rows it trained on to ROWS_DIR/rank<r>.json, so the test can check
that the global batch was really split between the ranks (not trained twice in full).

``make_trainer`` is shared with the test, which runs the same thing in a single process.
"""

from __future__ import annotations

import json
import sys
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.train import ShuffledBatches, Trainer, warmup_cosine

MAX_STEPS = 6


def make_trainer(ckpt_dir=None, progress=False) -> Trainer:
    torch.manual_seed(0)  # same init on every rank (DDP would broadcast rank 0's anyway)
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2)).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g, dtype=torch.float64)
    y = (x[:, 0] * x[:, 1] > 0).long()
    # Global batch of 8 per micro-batch: with 2 processes each rank trains on 4 of those 8 rows.
    return Trainer(
        model, torch.optim.Adam(model.parameters(), lr=0.05), ShuffledBatches(x, y, batch_size=8),
        loss_fn=F.cross_entropy, max_steps=MAX_STEPS, grad_accum_steps=2, clip_grad_norm=0.5,
        lr_schedule=partial(warmup_cosine, warmup=2, total=MAX_STEPS), checkpoint_dir=ckpt_dir, progress=progress,
    )  # fmt: skip


if __name__ == "__main__":
    torch.set_num_threads(1)
    trainer = make_trainer(sys.argv[1], progress=True)
    rows: list[list[float]] = []
    trainer.model.register_forward_pre_hook(lambda module, inputs: rows.extend(inputs[0].tolist()))
    trainer.fit()
    if trainer.world_size != 2:
        raise SystemExit(f"expected 2 processes, got world_size={trainer.world_size}")
    with open(f"{sys.argv[2]}/rank{trainer.rank}.json", "w") as f:
        json.dump(rows, f)
