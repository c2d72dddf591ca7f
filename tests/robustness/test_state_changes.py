"""State changes are all or nothing: a bad checkpoint or a non-finite step leaves everything as it was.

Each test builds the attack (a checkpoint of another model, a damaged file, a NaN batch, an infinite
gradient), checks that the error names the culprit, and then that the model, the optimizer (state and
hyper-parameters) and the Trainer (step, history, clock, RNG) are bit-identical to before.
"""

import copy
import json
import random
from functools import partial

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from bestiary.io import FileFormatError
from bestiary.train import (
    CheckpointMismatchError,
    Muon,
    OptimizerChain,
    Trainer,
    latest_checkpoint,
    load_checkpoint,
    warmup_cosine,
)

# ------------------------------------------------------------------------------------------- helpers


def mlp(width=32, extra_layer=False, seed=0):
    torch.manual_seed(seed)
    layers = [nn.Linear(6, width), nn.GELU(), nn.Linear(width, 3)]
    if extra_layer:
        layers.append(nn.Linear(3, 3))
    return nn.Sequential(*layers)


def get_batch(i, nan_at=None):
    """Random access batches; batch ``nan_at`` has a NaN in its inputs."""
    g = torch.Generator().manual_seed(i)
    x = torch.randn(8, 6, generator=g)
    y = (x[:, 0] > x[:, 1]).long()
    if i == nan_at:
        x[3, 2] = float("nan")
    return x, y


def adamw(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2)


def muon_adamw(model):
    return OptimizerChain(
        Muon([model[0].weight], lr=0.02), torch.optim.AdamW([model[0].bias, *model[2].parameters()])
    )


def trainer(model=None, optimizer=adamw, max_steps=3, **kw):
    model = model if model is not None else mlp()
    kw.setdefault("train_data", get_batch)
    return Trainer(
        model, optimizer(model), loss_fn=F.cross_entropy, max_steps=max_steps, progress=False, **kw
    )


def saved_run(root, model=None, optimizer=adamw, steps=3):
    """Train ``steps`` steps with a checkpoint after each one; returns the latest checkpoint's path."""
    trainer(model, optimizer, max_steps=steps, checkpoint_dir=root, checkpoint_every=1, keep_last=None).fit()
    return latest_checkpoint(root)


def set_up(t):
    """What fit() and load_checkpoint() do first: join the process group, pick the device, seed the RNGs."""
    assert t.is_main  # (the property sets the Trainer up)
    return t


def target(optimizer=adamw, trained=True, **kw):
    """The Trainer a bad checkpoint is loaded into: by default one with 2 steps of its own (other seed)."""
    t = set_up(trainer(mlp(seed=7), optimizer, max_steps=2, seed=7, **kw))
    if trained:
        t.fit()
    return t


def snapshot(t):
    """Everything a load or a step could change, deep-copied (tensors cloned)."""
    optimizers = t.optimizer.optimizers if isinstance(t.optimizer, OptimizerChain) else [t.optimizer]
    return {
        "model": {k: v.clone() for k, v in t.model.state_dict().items()},
        "optimizer": [copy.deepcopy(opt.state_dict()) for opt in optimizers],
        "trainer": copy.deepcopy([t.step, t.history, t.base_lrs, t.train_seconds]),
        "scaler": t.scaler.state_dict() if getattr(t, "scaler", None) is not None else None,
        "rng": [torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()],
    }


def assert_identical(a, b, where="state"):
    """Bit-identical: same structure, same dtypes, same bits (torch.equal), same numbers."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_identical(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def edit_tensors(file, edit):
    tensors = load_file(str(file))
    edit(tensors)
    save_file(tensors, str(file))


def edit_state(path, edit):
    state = json.loads((path / "state.json").read_text())
    edit(state)
    (path / "state.json").write_text(json.dumps(state))


# ------------------------------------------------------------------------ checkpoints that do not fit


def test_checkpoint_of_a_wider_model_changes_nothing(tmp_path):
    path = saved_run(tmp_path, mlp(width=64))
    t = target()
    before = snapshot(t)
    with pytest.raises(
        CheckpointMismatchError, match=r"'0\.weight' has shape \(64, 6\) in the checkpoint but \(32, 6\)"
    ):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))

    # Control: torch's own load_state_dict copies the one tensor that fits (2.bias) before raising.
    model = mlp(seed=7)
    with pytest.raises(RuntimeError, match="size mismatch"):
        model.load_state_dict(load_file(str(path / "model.safetensors")))
    assert not torch.equal(model[2].bias, before["model"]["2.bias"])


@pytest.mark.parametrize("saved_extra_layer", [True, False], ids=["one-more-layer", "one-less-layer"])
def test_checkpoint_of_a_deeper_or_shallower_model_names_the_layer(tmp_path, saved_extra_layer):
    path = saved_run(tmp_path, mlp(extra_layer=saved_extra_layer))
    t = trainer(mlp(extra_layer=not saved_extra_layer, seed=7), max_steps=2, seed=7)
    t.fit()
    before = snapshot(t)
    match = (
        r"unexpected tensor '3\.weight' \(3, 3\)"
        if saved_extra_layer
        else r"'3\.weight' \(3, 3\) of the model is missing"
    )
    with pytest.raises(CheckpointMismatchError, match=match):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


@pytest.mark.parametrize("trained", [True, False], ids=["into-trained", "into-fresh"])
@pytest.mark.parametrize(
    "file, name, match",
    [
        ("model.safetensors", "0.weight", r"tensor '0\.weight' has dtype torch\.float64 in the checkpoint but torch\.float32"),
        ("optimizer.safetensors", "0.exp_avg",
         r"'0\.exp_avg' \(state 'exp_avg' of parameter '0\.weight'\) has dtype torch\.float64 in the checkpoint but torch\.float32"),
    ],
)  # fmt: skip
def test_float64_where_float32_is_expected(tmp_path, trained, file, name, match):
    """torch would cast the float64 tensor silently; a fresh optimizer (no state yet) is checked too."""
    path = saved_run(tmp_path)
    edit_tensors(path / file, lambda tensors: tensors.update({name: tensors[name].double()}))
    t = target(trained=trained)
    before = snapshot(t)
    with pytest.raises(CheckpointMismatchError, match=match):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


def test_optimizer_file_missing_a_tensor(tmp_path):
    path = saved_run(tmp_path)
    edit_tensors(path / "optimizer.safetensors", lambda tensors: tensors.pop("1.exp_avg"))
    t = target()
    before = snapshot(t)
    with pytest.raises(CheckpointMismatchError, match=r"'1\.exp_avg' listed in state\.json is missing"):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


def test_optimizer_state_shaped_for_another_model(tmp_path):
    """The model fits but the optimizer's moments do not (a hand-assembled checkpoint): still nothing changes."""
    path = saved_run(tmp_path)
    edit_tensors(
        path / "optimizer.safetensors", lambda tensors: tensors.update({"2.exp_avg_sq": torch.zeros(4, 32)})
    )
    t = target()
    before = snapshot(t)
    with pytest.raises(
        CheckpointMismatchError, match=r"'2\.exp_avg_sq'.*has shape \(4, 32\) in the checkpoint but \(3, 32\)"
    ):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


@pytest.mark.parametrize(
    "saved, resumed, names",
    [
        (adamw, lambda m: torch.optim.SGD(m.parameters(), lr=0.1), ["is AdamW", "this one is SGD"]),
        (adamw, muon_adamw, ["is AdamW", "this one is a chain of 2 optimizers (Muon, AdamW)"]),
        (muon_adamw, lambda m: OptimizerChain(Muon([m[0].weight]), torch.optim.SGD([m[0].bias, *m[2].parameters()], lr=0.1)),
         ["is a chain of 2 optimizers (Muon, AdamW)", "this one is a chain of 2 optimizers (Muon, SGD)"]),
    ],
    ids=["adamw-into-sgd", "adamw-into-muon+adamw", "muon+adamw-into-muon+sgd"],
)  # fmt: skip
def test_resuming_into_another_optimizer_type_names_both(tmp_path, saved, resumed, names):
    saved_run(tmp_path, optimizer=saved)
    t = trainer(mlp(seed=7), resumed, max_steps=6, checkpoint_dir=tmp_path, resume=True)
    before = snapshot(t)
    with pytest.raises(CheckpointMismatchError) as error:
        t.fit()
    for name in names:
        assert name in str(error.value)
    before["rng"] = snapshot(t)["rng"]  # fit() seeded the fresh run before loading: not the load's doing
    assert_identical(before, snapshot(t))


def test_chain_member_mismatch_is_named_per_member(tmp_path):
    """Muon + AdamW into Muon + AdamW over a wider head: the error names the member (chain1) and the tensor."""
    path = saved_run(tmp_path, optimizer=muon_adamw)
    t = target(muon_adamw)
    before = snapshot(t)
    edit_tensors(
        path / "optimizer.safetensors",
        lambda tensors: tensors.update({"chain1.1.exp_avg": torch.zeros(3, 33)}),
    )
    with pytest.raises(
        CheckpointMismatchError, match=r"(?s)chain1: AdamW.*'chain1\.1\.exp_avg'.*'2\.weight'.*\(3, 33\)"
    ):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


# ------------------------------------------------------------------------- damaged checkpoint files


def test_truncated_state_json_names_the_file_and_the_previous_checkpoint(tmp_path):
    path = saved_run(tmp_path)
    text = (path / "state.json").read_text()
    (path / "state.json").write_text(text[: len(text) // 2])
    t = trainer(mlp(seed=7), max_steps=6, checkpoint_dir=tmp_path, resume=True)
    before = snapshot(t)
    with pytest.raises(FileFormatError) as error:
        t.fit()
    message = str(error.value)
    assert str(path / "state.json") in message and "truncated or corrupted" in message
    assert f"resume from the previous checkpoint, {tmp_path / 'step_00000002'}" in message
    before["rng"] = snapshot(t)["rng"]  # fit() seeded the fresh run before loading
    assert_identical(before, snapshot(t))


@pytest.mark.parametrize("damage", ["truncated", "garbage-header"])
def test_corrupted_model_safetensors(tmp_path, damage):
    path = saved_run(tmp_path)
    data = (path / "model.safetensors").read_bytes()
    data = data[: len(data) // 2] if damage == "truncated" else data[:8] + b"}{not json" + data[18:]
    (path / "model.safetensors").write_bytes(data)
    t = target()
    before = snapshot(t)
    with pytest.raises(
        FileFormatError, match=r"model\.safetensors.*not a readable safetensors file"
    ) as error:
        t.load_checkpoint(path)
    assert str(tmp_path / "step_00000002") in str(error.value)
    assert_identical(before, snapshot(t))


def test_only_checkpoint_damaged_says_there_is_no_earlier_one(tmp_path):
    path = saved_run(tmp_path, steps=1)
    (path / "optimizer.safetensors").write_bytes(b"")
    with pytest.raises(FileFormatError, match="optimizer.safetensors.*no earlier checkpoint exists"):
        load_checkpoint(path, mlp(), adamw(mlp()))


@pytest.mark.parametrize(
    "edit, error, match",
    [
        (lambda s: s["extra"].update(history=5), FileFormatError, "'history' is not a list"),
        (lambda s: s["extra"].update(base_lrs=[0.1, 0.2]), CheckpointMismatchError, "2 peak learning rates.*1 param groups"),
        (lambda s: s["extra"]["rng"]["rank0"].update(python=[3, [1, 2, 3], None]), FileFormatError, "RNG state for rank0 is unusable"),
        (lambda s: s.update(step=-4), FileFormatError, "its step is -4"),
    ],
    ids=["history", "base_lrs", "rng", "step"],
)  # fmt: skip
def test_trainer_state_is_checked_before_the_model_changes(tmp_path, edit, error, match):
    """The model and optimizer files are fine; only the Trainer's part of state.json is bad."""
    path = saved_run(tmp_path)
    edit_state(path, edit)
    t = target()
    before = snapshot(t)
    with pytest.raises(error, match=match):
        t.load_checkpoint(path)
    assert_identical(before, snapshot(t))


# ----------------------------------------------------------------------------- non-finite steps


def run_until_failure(good_steps, **kw):
    """Train ``good_steps`` clean steps, snapshot, then continue into the failing step."""
    t = trainer(max_steps=good_steps, **kw)
    t.fit()
    before = snapshot(t)
    t.max_steps = good_steps + 5
    with pytest.raises(FloatingPointError) as error:
        t.fit()
    return t, before, str(error.value)


def test_nan_batch_at_step_k_leaves_the_weights_of_step_k_minus_1(tmp_path):
    """Accumulation 2, a warmup-cosine schedule (it must not move the LR either), NaN in batch 7 = step 4."""
    t, before, message = run_until_failure(
        3, train_data=partial(get_batch, nan_at=7), grad_accum_steps=2,
        lr_schedule=partial(warmup_cosine, warmup=2, total=10),
    )  # fmt: skip
    assert "the loss is nan at step 4 (micro-batch 2 of 2: train_data batch 7)" in message
    assert "are those after step 3" in message
    assert "bad data" in message and "learning rate" in message  # causes listed, the LR not blamed alone
    assert_identical(before, snapshot(t))
    assert t.step == 3
    # what the check prevented: the gradients of that step are NaN (left in .grad to inspect)
    assert torch.isnan(t.model[0].weight.grad).any()


def test_inf_gradient_of_one_parameter_is_named_with_check_grads(tmp_path):
    """sqrt(gate) at a gate of 0: finite loss, infinite gradient for that one parameter only."""

    class SqrtGate(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Parameter(torch.ones(32))
            with torch.no_grad():
                self.gate[5] = 0.0

        def forward(self, x):
            return x * self.gate.sqrt()

    def gated(seed=0):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(6, 32), nn.GELU(), SqrtGate(), nn.Linear(32, 3))

    t = set_up(trainer(gated(), max_steps=1, check_grads=True))
    before = snapshot(t)
    with pytest.raises(
        FloatingPointError, match=r"gradient of parameter '2\.gate' has 0 NaN and 1 inf.*at step 1"
    ) as e:
        t.fit()
    assert "sqrt or log at 0" in str(e.value)
    assert_identical(before, snapshot(t))

    # Control: without the check the optimizer steps and the gate's weights become NaN.
    unchecked = trainer(gated(), max_steps=1)
    unchecked.fit()
    assert not torch.isfinite(unchecked.model[2].gate).all()
    # ...and with clipping, the non-finite norm is caught without check_grads (it is computed anyway).
    clipped = set_up(trainer(gated(), max_steps=1, clip_grad_norm=1.0))
    before = snapshot(clipped)
    with pytest.raises(FloatingPointError, match="gradient norm is (inf|nan).*check_grads=True"):
        clipped.fit()
    assert_identical(before, snapshot(clipped))


def test_nan_loss_under_bf16_autocast():
    t, before, message = run_until_failure(2, train_data=partial(get_batch, nan_at=2), amp="bf16")
    assert "the loss is nan at step 3 (train_data batch 2)" in message and "amp='bf16'" in message
    assert_identical(before, snapshot(t))


@pytest.mark.filterwarnings("ignore:amp='fp16' is meant for GPUs")
def test_fp16_nan_loss_is_an_error_but_overflowing_gradients_are_not():
    """The GradScaler owns overflowing gradients (skip + lower the scale); a NaN loss comes from the forward."""
    t, before, message = run_until_failure(2, train_data=partial(get_batch, nan_at=2), amp="fp16")
    assert "the loss is nan at step 3" in message and "try amp='bf16'" in message
    assert_identical(before, snapshot(t))  # the scaler's scale included

    # A huge (finite) loss overflows fp16 gradients: with check_grads=True still no error, the scaler skips.
    model = mlp()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    blown = Trainer(model, adamw(model), get_batch, loss_fn=lambda out, y: F.cross_entropy(out, y) * 1e6,
                    max_steps=2, amp="fp16", check_grads=True, progress=False)  # fmt: skip
    blown.fit()
    assert blown.scaler.get_scale() == 2.0**16 / 2**2  # both steps skipped, the scale halved twice
    assert_identical(initial, dict(model.state_dict()))
