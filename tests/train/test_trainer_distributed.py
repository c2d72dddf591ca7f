"""torchrun with 2 CPU processes (Gloo, DDP) reaches the same weights and losses as 1 process."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from torchrun_launch import run_two_processes

from bestiary.train import latest_checkpoint, load_checkpoint

WORKER = Path(__file__).with_name("ddp_train_worker.py")
_spec = importlib.util.spec_from_file_location("ddp_train_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


@pytest.mark.distributed
def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    ckpt_dir, rows_dir = tmp_path / "ckpt", tmp_path / "rows"
    rows_dir.mkdir()
    run_two_processes(WORKER, ckpt_dir, rows_dir, timeout=180)

    single = worker.make_trainer()  # the same run, one process, same global batches
    single_rows: list[list[float]] = []
    single.model.register_forward_pre_hook(lambda module, inputs: single_rows.extend(inputs[0].tolist()))
    single.fit()
    assert single.world_size == 1

    # only rank 0 wrote: exactly one final checkpoint (a second writer would have added step_..._<id>)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["latest", f"step_{worker.MAX_STEPS:08d}"]
    ddp = worker.make_trainer()
    ckpt = load_checkpoint(latest_checkpoint(ckpt_dir), ddp.model, ddp.optimizer)
    assert ckpt.extra["world_size"] == 2
    assert set(ckpt.extra["rng"]) == {"rank0", "rank1"}  # both ranks' RNG states, gathered on rank 0
    assert not torch.equal(ckpt.tensors["rank0.torch_cpu"], ckpt.tensors["rank1.torch_cpu"])

    for a, b in zip(single.model.parameters(), ddp.model.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
    assert not torch.equal(single.model[0].weight, worker.make_trainer().model[0].weight)  # it did train
    losses_ddp = [row["loss"] for row in ckpt.extra["history"]]
    assert losses_ddp == pytest.approx([row["loss"] for row in single.history], rel=1e-10)
    grad_norms = [row["grad_norm"] for row in ckpt.extra["history"]]
    assert grad_norms == pytest.approx([row["grad_norm"] for row in single.history], rel=1e-10)

    # each rank trained on its own half of every global micro-batch of 8 rows: 6 steps x 2 micro x 4 rows
    rank_rows = [json.loads((rows_dir / f"rank{r}.json").read_text()) for r in range(2)]
    assert [len(r) for r in rank_rows] == [48, 48]
    halves = [single_rows[i : i + 8] for i in range(0, len(single_rows), 8)]
    assert rank_rows[0] == [row for half in halves for row in half[:4]]
    assert rank_rows[1] == [row for half in halves for row in half[4:]]
