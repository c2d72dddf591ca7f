"""torchrun with 2 CPU processes (Gloo, FSDP2): same losses as 1 process, half the weights each, exact resume.

One torchrun launch runs fsdp_train_worker.py (three FSDP2 runs: uninterrupted, stopped at step 3,
resumed); this process runs the same model, optimizer chain and global batches in one process.

Tolerance of the trajectory: the losses and gradient norms agree to rtol 1e-6 (measured: about 5e-8 in
float32, i.e. a few ulps), not exactly, because the arithmetic is grouped differently. One process
computes each gradient as one matmul over the 8 rows of a micro-batch; FSDP2 computes two 4-row
gradients, one per rank, and reduce-scatters their average -- the same sum, rounded in another order.
Those last-bit differences then pass through the optimizer (and Muon's Newton-Schulz iterations). The
resumed run, in contrast, repeats the uninterrupted run's arithmetic exactly, so it is compared bit for bit.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torchrun_launch import run_two_processes

from bestiary.io import FileFormatError
from bestiary.train import Trainer, latest_checkpoint, load_checkpoint
from bestiary.train.sharded import SHARDED_DIR, shard_model

WORKER = Path(__file__).with_name("fsdp_train_worker.py")
_spec = importlib.util.spec_from_file_location("fsdp_train_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)

RTOL = 1e-6  # float32 losses and gradient norms, FSDP2 (2 processes) vs 1 process: see the module docstring


def _without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time_s"} for row in rows]


@pytest.mark.distributed
def test_fsdp2_matches_one_process_holds_half_the_weights_and_resumes_exactly(tmp_path):
    run_two_processes(WORKER, tmp_path, timeout=300)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    # every rank logs the same (all-reduced) numbers; only its own clock differs
    assert _without_time(ranks[0]["full"]) == _without_time(ranks[1]["full"])

    # 1. the loss trajectory of one process, on the same global batches
    single = worker.make_trainer()
    single.fit()
    assert single.world_size == 1
    full = ranks[0]["full"]
    assert [row["step"] for row in full] == list(range(1, worker.MAX_STEPS + 1))
    for key in ("loss", "grad_norm", "lr"):
        np.testing.assert_allclose(
            [row[key] for row in full], [row[key] for row in single.history], rtol=RTOL
        )
    assert full[-1]["loss"] < full[0]["loss"]  # it did train

    # 2. each rank holds about half of the parameters (the 3-row head splits 2 + 1), together all of them
    total = ranks[0]["total_numel"]
    assert total == sum(p.numel() for p in single.model.parameters())
    assert ranks[0]["param_types"] == ["DTensor"]
    assert ranks[0]["fsdp_units"] == 3  # each of the 2 blocks of the nn.ModuleList, then the root
    assert sum(r["local_numel"] for r in ranks) == total
    for r in ranks:
        assert abs(r["local_numel"] - total / 2) <= 0.1 * total / 2, (r["local_numel"], total)

    # 3. stopped at step 3 and resumed: steps 4..6 equal the uninterrupted run's bit for bit
    for r in ranks:
        k = worker.RESUME_AT
        assert _without_time(r["first"]) == _without_time(r["full"][:k])
        assert _without_time(r["resumed"]) == _without_time(r["full"])  # history restored + continued
        assert r["weights_equal"] and r["optimizer_equal"] and r["optimizer_tensors"] > 0

    # a NaN loss under FSDP2: every rank raises the same error before the update (none waits forever)
    for r in ranks:
        assert "the loss is nan in at least one of the 2 processes at step 2" in r["nan_message"], r[
            "nan_message"
        ]
        assert r["nan_message"] == ranks[0]["nan_message"] and r["nan_message"].endswith("after step 1]")

    # the checkpoints: safetensors shards (one per rank) + JSON, no pickle file, published by rank 0 alone
    ckpt = latest_checkpoint(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "latest",
        "step_00000003",
        "step_00000006",
    ]
    assert sorted(p.name for p in ckpt.iterdir()) == ["extra.safetensors", SHARDED_DIR, "state.json"]
    assert len(list((ckpt / SHARDED_DIR).glob("*.safetensors"))) == 2
    assert sorted(p.suffix for p in (ckpt / SHARDED_DIR).iterdir()) == [".safetensors", ".safetensors"]

    # a single process consolidates the shards (model and optimizer state), close to its own weights
    consolidated = worker.make_trainer(parallel="ddp")
    loaded = load_checkpoint(ckpt, consolidated.model, consolidated.optimizer)
    assert loaded.step == worker.MAX_STEPS and loaded.extra["world_size"] == 2
    for a, b in zip(single.model.parameters(), consolidated.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)

    # all or nothing: a missing shard is refused before the model changes
    before = [p.detach().clone() for p in consolidated.model.parameters()]
    for root, lost in [("ckpt", 0), ("ckpt_full", 1)]:  # rank 0's shard file, rank 1's
        step3 = tmp_path / root / "step_00000003"
        sorted((step3 / SHARDED_DIR).glob("*.safetensors"))[lost].unlink()
        with pytest.raises(FileFormatError, match="a shard file is missing or damaged"):
            load_checkpoint(step3, consolidated.model, consolidated.optimizer)
        assert all(torch.equal(a, b) for a, b in zip(before, consolidated.model.parameters()))


def test_fsdp2_refusals():
    model = worker.ResidualMLP()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="parallel must be"):
        Trainer(model, optimizer, [torch.zeros(2, 4)], max_steps=1, parallel="fsdp")
    with pytest.raises(ValueError, match="amp='bf16'"):
        Trainer(model, optimizer, [torch.zeros(2, 4)], max_steps=1, parallel="fsdp2", amp="fp16")
    # an optimizer that already holds state can't be re-pointed at the sharded parameters
    model(torch.zeros(2, 4)).sum().backward()
    stateful = torch.optim.Adam(model.parameters())
    stateful.step()
    with pytest.raises(ValueError, match="freshly built optimizer"):
        shard_model(model, stateful, torch.device("cpu"), 2)
