"""The Trainer with an OptimizerChain (Muon for conv kernels + AdamW for the rest): it learns, each param
group follows the schedule from its own peak LR, fp16 loss scaling steps every member, and resuming from a
checkpoint continues exactly like a run that never stopped."""

from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bestiary.train.trainer as trainer_module
from bestiary.train import Muon, OptimizerChain, ShuffledBatches, Trainer, muon_with_adamw, warmup_cosine
from bestiary.train.checkpoint import stage_checkpoint


class FakeClock:
    """Stands in for the ``time`` module inside the Trainer; the data function moves it 1 s per batch,
    so ``time_s`` is a step count and comparable between runs (no wall-clock assertions)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


def quadrant_images(n=128, seed=0):
    """Class = which quadrant of an 8x8 image holds a bright 2x2 blob: needs the convs to find it."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = 0.3 * torch.randn(n, 1, 8, 8, generator=g)
    for k, (r, c) in enumerate([(1, 1), (1, 5), (5, 1), (5, 5)]):
        x[y == k, :, r : r + 2, c : c + 2] += 1.5
    return x, y


def small_cnn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),  # (B, 8, 8, 8)
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1),  # (B, 8, 4, 4)
        nn.ReLU(),
        nn.Flatten(),  # (B, 128)
        nn.Linear(128, 4),
    )


SCHEDULE = partial(warmup_cosine, warmup=4, total=40, min_ratio=0.1)


def chain_run(max_steps, model=None, clock=None, **kw):
    model = model or small_cnn()
    chain = muon_with_adamw(model, lr=0.05, adamw_lr=5e-3, weight_decay=5e-4)
    x, y = quadrant_images()
    batches = ShuffledBatches(x, y, batch_size=16, seed=3)

    def data(i):
        if clock is not None:
            clock.now += 1.0  # each micro-batch "takes" one second of training time
        return batches(i)

    trainer = Trainer(model, chain, data, loss_fn=F.cross_entropy, max_steps=max_steps, lr_schedule=SCHEDULE,
                      clip_grad_norm=1.0, progress=False, **kw)  # fmt: skip
    trainer.fit()
    return trainer


def test_muon_plus_adamw_learns_and_each_group_follows_its_own_peak_lr():
    trainer = chain_run(40)
    chain, losses = trainer.optimizer, [row["loss"] for row in trainer.history]
    assert isinstance(chain, OptimizerChain) and isinstance(chain.optimizers[0], Muon)
    assert sum(losses[-5:]) < 0.3 * sum(losses[:5]), losses
    x, y = quadrant_images()
    assert (trainer.model(x).argmax(-1) == y).float().mean() > 0.9
    # The logged lr is the first group's (Muon, peak 0.05); AdamW's group scales its own peak, 5e-3.
    assert [row["lr"] for row in trainer.history] == pytest.approx([0.05 * SCHEDULE(s) for s in range(40)])
    muon_group, adamw_groups = chain.optimizers[0].param_groups[0], chain.optimizers[1].param_groups
    assert muon_group["lr"] == pytest.approx(0.05 * SCHEDULE(39))
    assert all(g["lr"] == pytest.approx(5e-3 * SCHEDULE(39)) for g in adamw_groups)
    assert all(len(opt.state) > 0 for opt in chain.optimizers)  # both members really stepped
    assert max(row["grad_norm"] for row in trainer.history) > 1.0  # the global clip was active


def test_resume_with_a_chain_continues_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch):
    clocks = [FakeClock() for _ in range(3)]
    monkeypatch.setattr(trainer_module, "time", clocks[0])
    uninterrupted = chain_run(12, clock=clocks[0])
    monkeypatch.setattr(trainer_module, "time", clocks[1])
    chain_run(5, clock=clocks[1], checkpoint_dir=tmp_path)  # "crashes" after its checkpoint at step 5
    monkeypatch.setattr(trainer_module, "time", clocks[2])
    resumed = chain_run(12, model=small_cnn(seed=7), clock=clocks[2], checkpoint_dir=tmp_path, resume=True)

    assert resumed.step == 12
    for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    # Muon's momentum buffers and AdamW's moments were restored, not restarted from zero
    for opt_a, opt_b in zip(uninterrupted.optimizer.optimizers, resumed.optimizer.optimizers, strict=True):
        sa, sb = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
        assert sa.keys() == sb.keys() and sa
        for idx in sa:
            for key, value in sa[idx].items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(sb[idx][key]))
    assert resumed.history == uninterrupted.history  # loss, lr, grad_norm and the training clock time_s


def test_resume_without_the_optimizer_state_would_differ(tmp_path, monkeypatch):
    """Control for the test above: restarting Muon + AdamW from empty state changes the weights."""
    uninterrupted = chain_run(8)
    chain_run(4, checkpoint_dir=tmp_path)
    # the Trainer's load with the optimizer left out: model, step, history and RNG restored, optimizer fresh
    monkeypatch.setattr(
        trainer_module, "stage_checkpoint", lambda path, model, optimizer: stage_checkpoint(path, model)
    )
    resumed = chain_run(8, model=small_cnn(seed=7), checkpoint_dir=tmp_path, resume=True)
    assert not all(
        torch.equal(a, b) for a, b in zip(uninterrupted.model.parameters(), resumed.model.parameters())
    )


def mlp_chain_run(loss_scale):
    """fp16 autocast + GradScaler with a chain (Muon on the hidden Linear, AdamW on the rest)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))
    initial = [p.detach().clone() for p in model.parameters()]
    chain = OptimizerChain(
        Muon([model[0].weight], lr=0.02), torch.optim.AdamW([model[0].bias, *model[2].parameters()], lr=1e-2)
    )
    x = torch.randn(32, 4)
    trainer = Trainer(model, chain, ShuffledBatches(x, (x[:, 0] > 0).long(), batch_size=8),
                      loss_fn=lambda out, t: F.cross_entropy(out, t) * loss_scale, max_steps=3, amp="fp16",
                      progress=False)  # fmt: skip
    with pytest.warns(UserWarning, match="bf16"):  # fp16 on CPU works but is slow: the Trainer warns
        trainer.fit()
    changed = [not torch.equal(p, q) for p, q in zip(model.parameters(), initial, strict=True)]
    return trainer, changed


def test_fp16_grad_scaler_unscales_and_steps_every_member_of_the_chain():
    ok, changed = mlp_chain_run(1.0)
    assert all(changed) and ok.scaler.get_scale() == 2.0**16  # both members stepped, no overflow
    # A huge loss overflows fp16 gradients: every member must skip every step, and the scale halves each time.
    blown, changed = mlp_chain_run(1e6)
    assert not any(changed) and blown.scaler.get_scale() == 2.0**16 / 2**3
