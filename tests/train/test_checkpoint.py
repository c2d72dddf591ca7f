"""Checkpoints: exact round trips (no pickle), pruning, and bit-identical resume of a Trainer."""

import json
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bestiary.train.trainer as trainer_module
from bestiary.train import (
    Muon,
    OptimizerChain,
    ShuffledBatches,
    Trainer,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
    warmup_cosine,
)


def net(seed=0, dropout=0.3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 32), nn.GELU(), nn.Dropout(dropout), nn.Linear(32, 3))


def data():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(48, 6, generator=g)
    return ShuffledBatches(x, (x[:, 0] > x[:, 1]).long() + (x[:, 2] > 0).long(), batch_size=8, seed=11)


def run(model, max_steps, **kw):
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.1)
    trainer = Trainer(
        model, opt, data(), loss_fn=F.cross_entropy, max_steps=max_steps, grad_accum_steps=2, clip_grad_norm=1.0,
        lr_schedule=partial(warmup_cosine, warmup=3, total=10, min_ratio=0.1), eval_every=3,
        eval_fn=lambda m: {"w_norm": m[0].weight.norm()}, progress=False, **kw,
    )  # fmt: skip
    trainer.fit()
    return trainer


def test_resume_in_a_new_trainer_is_bit_identical(tmp_path):
    """Dropout + reshuffled epochs + AdamW + schedule + accumulation: resume must restore everything."""
    uninterrupted = run(net(), 10)

    run(net(), 4, checkpoint_dir=tmp_path)  # "crashes" after step 4 (its final checkpoint)
    resumed = run(net(seed=123), 10, checkpoint_dir=tmp_path, resume=True)  # fresh objects, other init

    for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
    sa, sb = uninterrupted.optimizer.state_dict(), resumed.optimizer.state_dict()
    for idx in sa["state"]:
        for key in sa["state"][idx]:
            assert torch.equal(torch.as_tensor(sa["state"][idx][key]), torch.as_tensor(sb["state"][idx][key]))
    # (the interrupted run also evaluated at its last step, 4, so compare the training columns)
    keep = ("step", "loss", "lr", "grad_norm")
    assert [{k: r[k] for k in keep} for r in resumed.history] == [
        {k: r[k] for k in keep} for r in uninterrupted.history
    ]
    assert latest_checkpoint(tmp_path).name == "step_00000010"


def test_resume_without_restoring_rng_would_differ(tmp_path, monkeypatch):
    """Control for the test above: with dropout, skipping the RNG restore changes the weights."""
    uninterrupted = run(net(), 6)
    run(net(), 3, checkpoint_dir=tmp_path)
    monkeypatch.setattr(trainer_module, "set_rng_state", lambda tensors, meta: None)
    resumed = run(net(), 6, checkpoint_dir=tmp_path, resume=True)
    assert not all(
        torch.equal(a, b) for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters())
    )


def test_optimizer_and_model_round_trip_exactly(tmp_path):
    model = net(dropout=0.0)
    opt = torch.optim.Adam([{"params": model[0].parameters()}, {"params": model[3].parameters(), "lr": 0.5}],
                           lr=0.01, betas=(0.8, 0.95))  # fmt: skip
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 6)).square().mean().backward()
        opt.step()
    rng = torch.get_rng_state()
    path = save_checkpoint(tmp_path, 3, model, opt, extra={"note": "hi"}, tensors={"rng": rng})

    model2 = net(seed=9, dropout=0.0)
    opt2 = torch.optim.Adam([{"params": model2[0].parameters()}, {"params": model2[3].parameters(), "lr": 0.5}],
                            lr=0.01, betas=(0.8, 0.95))  # fmt: skip
    ckpt = load_checkpoint(path, model2, opt2)
    assert ckpt.step == 3 and ckpt.extra == {"note": "hi"}
    assert torch.equal(ckpt.tensors["rng"], rng)
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]["betas"] == (0.8, 0.95) and opt2.param_groups[1]["lr"] == 0.5
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for idx in s1:
        for key in s1[idx]:
            assert torch.equal(s1[idx][key], s2[idx][key])
    # one more identical step on both stays identical (the state is really usable)
    for m, o in [(model, opt), (model2, opt2)]:
        o.zero_grad()
        m(torch.ones(2, 6)).sum().backward()
        o.step()
    assert torch.equal(model[0].weight, model2[0].weight)


def test_only_safetensors_and_json_no_pickle(tmp_path):
    run(net(), 2, checkpoint_dir=tmp_path)
    files = sorted(p.name for p in latest_checkpoint(tmp_path).iterdir())
    assert files == ["extra.safetensors", "model.safetensors", "optimizer.safetensors", "state.json"]
    for p in latest_checkpoint(tmp_path).iterdir():
        assert not p.read_bytes().startswith(b"\x80")  # pickle protocol marker
    state = json.loads((latest_checkpoint(tmp_path) / "state.json").read_text())
    assert state["step"] == 2 and len(state["extra"]["history"]) == 2


class TiedLM(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight  # weight tying: one tensor, two names

    def forward(self, tokens):
        return self.head(self.embed(tokens))


def test_tied_weights_survive(tmp_path):
    model = TiedLM()
    save_checkpoint(tmp_path, 1, model)
    model2 = TiedLM()
    load_checkpoint(tmp_path, model2)
    assert torch.equal(model2.embed.weight, model.embed.weight)
    assert model2.head.weight is model2.embed.weight


def test_keep_last_and_never_overwrite_a_finished_checkpoint(tmp_path):
    model = nn.Linear(2, 2)
    for step in range(1, 6):
        save_checkpoint(tmp_path, step, model, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step_00000004", "step_00000005"]
    with torch.no_grad():
        model.weight.zero_()
    again = save_checkpoint(tmp_path, 5, model, keep_last=2)  # e.g. re-run after resuming from step 4
    assert again.name.startswith("step_00000005_") and latest_checkpoint(tmp_path) == again
    fresh = nn.Linear(2, 2)
    load_checkpoint(tmp_path, fresh)
    assert torch.equal(fresh.weight, torch.zeros(2, 2))


def test_missing_or_bad_checkpoints_raise_clearly(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    with pytest.raises(FileNotFoundError, match="not a checkpoint"):
        load_checkpoint(tmp_path, nn.Linear(2, 2))
    save_checkpoint(tmp_path, 1, nn.Linear(2, 2))
    with pytest.raises(ValueError, match="no optimizer state"):
        load_checkpoint(tmp_path, nn.Linear(2, 2), torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=1))
    with pytest.raises(Exception, match="size mismatch|shape"):
        load_checkpoint(tmp_path, nn.Linear(3, 2))
    (tmp_path / "latest").write_text("step_99999999\n")
    with pytest.raises(FileNotFoundError, match="missing or incomplete"):
        latest_checkpoint(tmp_path)


def test_resume_with_an_iterable_fast_forwards(tmp_path):
    """A list of batches (no random access): resume skips the batches already used, exactly."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 6, generator=g)
    batches = [(x[i : i + 8], (x[i : i + 8, 0] > 0).long()) for i in range(0, 40, 8)]

    def go(model, steps, **kw):
        t = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9), batches,
                    loss_fn=F.cross_entropy, max_steps=steps, grad_accum_steps=2, progress=False, **kw)  # fmt: skip
        t.fit()
        return t

    full = go(net(), 7)
    go(net(), 3, checkpoint_dir=tmp_path)
    resumed = go(net(), 7, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def muon_adamw_chain(model):
    """Muon (bfloat16 Newton-Schulz: a dtype hyperparameter JSON can't hold) on the hidden matrix, AdamW on the rest."""
    return OptimizerChain(
        Muon([model[0].weight], lr=0.02, ns_dtype=torch.bfloat16),
        torch.optim.AdamW([model[0].bias, *model[3].parameters()], lr=1e-2, betas=(0.8, 0.95)),
    )


def test_optimizer_chain_round_trips_exactly(tmp_path):
    model = net(dropout=0.0)
    chain = muon_adamw_chain(model)
    for _ in range(3):
        chain.zero_grad()
        model(torch.randn(4, 6)).square().mean().backward()
        chain.step()
    path = save_checkpoint(tmp_path, 3, model, chain)

    model2 = net(seed=9, dropout=0.0)
    chain2 = muon_adamw_chain(model2)
    load_checkpoint(path, model2, chain2)
    for member, member2 in zip(chain.optimizers, chain2.optimizers, strict=True):
        s1, s2 = member.state_dict(), member2.state_dict()
        assert s1["param_groups"] == s2["param_groups"]  # ns_dtype back as torch.bfloat16, betas as a tuple
        assert s1["state"].keys() == s2["state"].keys() and s1["state"]
        for idx in s1["state"]:
            for key in s1["state"][idx]:
                assert torch.equal(s1["state"][idx][key], s2["state"][idx][key])
    for m, c in [(model, chain), (model2, chain2)]:  # one more step on both stays identical
        c.zero_grad()
        m(torch.ones(2, 6)).sum().backward()
        c.step()
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)

    lone_adamw = torch.optim.AdamW(model2.parameters())
    with pytest.raises(ValueError, match="chain of 2 optimizers"):
        load_checkpoint(path, model2, lone_adamw)
