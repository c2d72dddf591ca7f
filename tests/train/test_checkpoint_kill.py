"""SIGKILL a process while it writes checkpoints: `latest` must always load and match a finished step."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bestiary.train import latest_checkpoint, load_checkpoint

WORKER = Path(__file__).with_name("ckpt_kill_worker.py")
_spec = importlib.util.spec_from_file_location("ckpt_kill_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


@pytest.fixture(scope="module")
def killed_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(WORKER), str(out)], check=True, timeout=180, env=env)
    return out, json.loads((out / "summary.json").read_text())


@pytest.fixture(scope="module")
def reference_weights():
    """Weights after every step of the same run, never interrupted and never checkpointed."""
    snapshots = {}

    def snapshot(model):
        snapshots[len(snapshots) + 1] = {k: v.clone() for k, v in model.state_dict().items()}
        return {}

    def upto(step):
        if step not in snapshots:
            snapshots.clear()
            worker.make_trainer(None, max_steps=step + 5, eval_every=1, eval_fn=snapshot).fit()
        return snapshots[step]

    return upto


@pytest.mark.slow
@pytest.mark.parametrize("scenario", worker.INJECTED + worker.RANDOM)
def test_latest_always_loads_and_matches_a_completed_step(killed_runs, reference_weights, scenario):
    out, summary = killed_runs
    assert summary[scenario]["killed"], "the writer was not killed"
    root = out / scenario
    path = latest_checkpoint(root)
    assert path is not None

    trainer = worker.make_trainer(None, max_steps=1)
    ckpt = load_checkpoint(root, trainer.model, trainer.optimizer)  # raises on any corrupt file
    assert ckpt.path == path and path.name == f"step_{ckpt.step:08d}"
    assert [row["step"] for row in ckpt.extra["history"]] == list(range(1, ckpt.step + 1))
    expected = reference_weights(ckpt.step)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, expected[name]), name

    if scenario in worker.INJECTED:  # the kill landed during the save of step 3: step 2 is the latest
        assert ckpt.step == worker.KILL_DURING_SAVE - 1
        leftovers = {p.name.split("-")[1] if p.name.startswith(".tmp-") else p.name for p in root.iterdir()}
        if scenario in ("model_partial", "after_json"):
            assert f"step_{worker.KILL_DURING_SAVE:08d}" in leftovers  # as an unfinished .tmp- dir
            assert not (root / f"step_{worker.KILL_DURING_SAVE:08d}").exists()
        else:
            assert (root / f"step_{worker.KILL_DURING_SAVE:08d}").is_dir()  # complete, but not yet "latest"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["model_partial", "before_pointer", "random_0"])
def test_resume_after_a_kill_continues_exactly(killed_runs, reference_weights, scenario):
    root = killed_runs[0] / scenario
    step = load_checkpoint(root, worker.make_trainer(None, max_steps=1).model).step
    trainer = worker.make_trainer(root, max_steps=step + 2, resume=True)
    trainer.fit()
    expected = reference_weights(step + 2)
    for name, value in trainer.model.state_dict().items():
        assert torch.equal(value, expected[name]), name
    assert not list(root.glob(".tmp-*"))  # the next save swept away what the killed writer left
    assert latest_checkpoint(root).name.startswith(f"step_{step + 2:08d}")
