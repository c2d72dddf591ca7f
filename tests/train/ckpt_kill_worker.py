"""Helper process for test_checkpoint_kill.py (not a test): get killed while writing checkpoints.

``python ckpt_kill_worker.py OUTDIR`` imports torch once, then for each scenario forks a child that
trains with a checkpoint after every step and is SIGKILLed -- either by a hook injected into one of
the checkpoint writer's steps (deterministic: the kill lands exactly mid-write) or by this process at
a random moment. Each scenario leaves its checkpoint directory in OUTDIR/<scenario>; the test then
checks that ``latest`` always loads and matches a completed step.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import bestiary.train.checkpoint as ck
from bestiary.train import ShuffledBatches, Trainer

INJECTED = ["model_partial", "after_json", "before_pointer", "pointer_partial"]
RANDOM = ["random_0", "random_1", "random_2"]
KILL_DURING_SAVE = 3  # the injected kill hits the checkpoint of step 3


def make_trainer(ckpt_dir, max_steps, **kwargs) -> Trainer:
    """The run every scenario (and the test's in-process reference) performs: dropout + shuffled data."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 2))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 8, generator=g)
    y = (x.sum(1) > 0).long()
    if ckpt_dir is not None:
        kwargs = {"checkpoint_dir": ckpt_dir, "checkpoint_every": 1, "keep_last": 2, **kwargs}
    return Trainer(model, torch.optim.AdamW(model.parameters(), lr=1e-2), ShuffledBatches(x, y, batch_size=8),
                   loss_fn=F.cross_entropy, max_steps=max_steps, progress=False, **kwargs)  # fmt: skip


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _inject(stage: str) -> None:
    """Replace one step of the checkpoint writer with a version that kills us on its 3rd call."""
    calls = {"n": 0}

    def due() -> bool:
        calls["n"] += 1
        return calls["n"] == KILL_DURING_SAVE

    if stage == "model_partial":  # die halfway through writing model.safetensors
        orig_model = ck._write_model

        def write_model(path, model):
            if due():
                path.write_bytes(b"\x00" * 37)
                _die()
            orig_model(path, model)

        ck._write_model = write_model
    elif stage == "after_json":  # the temp dir is complete but not yet renamed into place
        orig_json = ck._write_json

        def write_json(path, obj):
            orig_json(path, obj)
            if due():
                _die()

        ck._write_json = write_json
    elif stage in ("before_pointer", "pointer_partial"):  # step dir renamed, `latest` not yet updated
        orig_pointer = ck._point_latest

        def point_latest(root, name):
            if due():
                if stage == "pointer_partial":
                    (root / f"{ck._TMP_PREFIX}{ck.LATEST}-{os.getpid()}").write_text(name[:4])
                _die()
            orig_pointer(root, name)

        ck._point_latest = point_latest
    else:
        raise ValueError(stage)


def main(outdir: Path) -> None:
    # Pay torch's one-off lazy initialisation (the first optimizer step costs seconds) once, here,
    # instead of in every forked child. CPU-only and single-threaded, so forking afterwards is safe.
    make_trainer(None, max_steps=1).fit()
    summary = {}
    for scenario in INJECTED + RANDOM:
        ckpt_dir = outdir / scenario
        pid = os.fork()
        if pid == 0:  # child: train until killed
            try:
                if scenario in INJECTED:
                    _inject(scenario)
                    make_trainer(ckpt_dir, max_steps=10).fit()
                else:
                    make_trainer(ckpt_dir, max_steps=10**6).fit()
            finally:
                os._exit(3)  # reaching this means no kill happened: the test will notice
        if scenario in RANDOM:
            rng = random.Random(scenario)
            deadline = time.monotonic() + 60
            while not (ckpt_dir / ck.LATEST).exists() and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        summary[scenario] = {"killed": os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL}
    (outdir / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(Path(sys.argv[1]))
