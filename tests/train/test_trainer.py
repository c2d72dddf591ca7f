"""Trainer: learns, matches a hand-written loop, accumulation == big batch, AMP, eval, errors."""

import math
from functools import partial

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bestiary.train import ShuffledBatches, Trainer, accuracy, evaluate, warmup_cosine


def xor_data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    y = (x[:, 0] * x[:, 1] > 0).long()  # XOR of signs: not linearly separable
    return x, y


def mlp(dtype=torch.float32, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Dropout(dropout), nn.Linear(32, 2)).to(dtype)


def test_loss_falls_on_xor_and_accuracy_is_high():
    x, y = xor_data()
    model = mlp()
    before = evaluate(model, [(x, y)], F.cross_entropy)
    trainer = Trainer(
        model, torch.optim.AdamW(model.parameters(), lr=2e-2), ShuffledBatches(x, y, batch_size=32),
        loss_fn=F.cross_entropy, max_steps=150, lr_schedule=partial(warmup_cosine, warmup=10, total=150),
        eval_every=50, eval_fn=lambda m: {"acc": accuracy(m(x), y)}, progress=False,
    )  # fmt: skip
    history = trainer.fit()
    after = evaluate(model, [(x, y)], F.cross_entropy)
    assert before > 0.6 and after < 0.25, (before, after)
    assert history[-1]["acc"] > 0.93
    df = pd.DataFrame(history)  # pandas-friendly history
    assert list(df["step"]) == list(range(1, 151))
    assert df["acc"].notna().sum() == 3  # evaluated at steps 50, 100, 150
    assert df["loss"].iloc[-20:].mean() < 0.5 * df["loss"].iloc[:20].mean()
    assert (df["time_s"].diff().dropna() >= 0).all()


def test_matches_a_hand_written_loop_with_lambda_lr_and_clipping():
    """Oracle: the textbook loop, torch's LambdaLR and clip_grad_norm_, in float64."""
    torch.manual_seed(1)
    x, w_true = torch.randn(64, 5, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    y = x @ w_true + 0.1 * torch.randn(64, 3, dtype=torch.float64)
    data = ShuffledBatches(x, y, batch_size=8, seed=4)
    schedule = partial(warmup_cosine, warmup=3, total=12, min_ratio=0.1)

    ours = nn.Linear(5, 3).double()
    ref = nn.Linear(5, 3).double()
    ref.load_state_dict(ours.state_dict())

    opt = torch.optim.Adam(ours.parameters(), lr=0.05)
    hist = Trainer(ours, opt, data, loss_fn=F.mse_loss, max_steps=12, clip_grad_norm=0.5,
                   lr_schedule=schedule, progress=False).fit()  # fmt: skip

    ref_opt = torch.optim.Adam(ref.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.LambdaLR(ref_opt, schedule)
    ref_losses, ref_norms = [], []
    for step in range(12):
        xb, yb = data(step)
        ref_opt.zero_grad()
        loss = F.mse_loss(ref(xb), yb)
        loss.backward()
        ref_norms.append(float(nn.utils.clip_grad_norm_(ref.parameters(), 0.5)))
        ref_opt.step()
        sched.step()
        ref_losses.append(loss.item())

    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-13)
    assert [h["loss"] for h in hist] == pytest.approx(ref_losses, rel=1e-12)
    assert [h["grad_norm"] for h in hist] == pytest.approx(ref_norms, rel=1e-12)
    assert any(n > 0.5 for n in ref_norms)  # clipping was actually active


@pytest.mark.parametrize("clip", [None, 0.3])
def test_gradient_accumulation_equals_one_big_batch(clip):
    """k micro-batches of b rows == one batch of k*b rows (SGD: a missing 1/k would show as a 4x step)."""
    torch.manual_seed(2)
    x, y = torch.randn(64, 2, dtype=torch.float64), torch.randint(0, 2, (64,))
    results = []
    for batch_size, k in [(16, 1), (4, 4)]:
        model = mlp(torch.float64, seed=0)
        opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        data = ShuffledBatches(x, y, batch_size=batch_size, seed=7)  # same rows per step (64 % 16 == 0)
        hist = Trainer(model, opt, data, loss_fn=F.cross_entropy, max_steps=6, grad_accum_steps=k,
                       clip_grad_norm=clip, progress=False).fit()  # fmt: skip
        results.append((model, hist))
    (big, hist_big), (acc, hist_acc) = results
    for p, q in zip(big.parameters(), acc.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-12)
    assert [h["loss"] for h in hist_acc] == pytest.approx([h["loss"] for h in hist_big], rel=1e-12)
    if clip is not None:
        assert [h["grad_norm"] for h in hist_acc] == pytest.approx(
            [h["grad_norm"] for h in hist_big], rel=1e-12
        )
        assert max(h["grad_norm"] for h in hist_big) > clip
    # and the run did move the weights (otherwise equality would be trivial)
    assert not torch.equal(big[0].weight, mlp(torch.float64, seed=0)[0].weight)


def test_bf16_autocast_on_cpu_runs_in_bf16_and_stays_close_to_fp32():
    x, y = xor_data(128)
    dtypes_seen = []
    losses = {}
    for amp in [None, "bf16"]:
        model = mlp(seed=0)
        hook = model[0].register_forward_hook(lambda m, i, o, amp=amp: dtypes_seen.append((amp, o.dtype)))
        hist = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ShuffledBatches(x, y, batch_size=32),
                       loss_fn=F.cross_entropy, max_steps=20, amp=amp, progress=False).fit()  # fmt: skip
        hook.remove()
        losses[amp] = [h["loss"] for h in hist]
        assert model[0].weight.dtype == torch.float32  # master weights stay fp32
    assert {d for a, d in dtypes_seen if a == "bf16"} == {torch.bfloat16}  # autocast really ran
    assert {d for a, d in dtypes_seen if a is None} == {torch.float32}
    assert all(math.isfinite(v) for v in losses["bf16"])
    assert losses["bf16"] == pytest.approx(losses[None], rel=0.03, abs=0.01)
    assert losses["bf16"] != losses[None]  # bf16 really changed the arithmetic


def fp16_run(max_steps, loss_scale=1.0, **kw):
    x, y = xor_data(64)
    model = mlp(seed=0)
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ShuffledBatches(x, y, batch_size=16),
                      loss_fn=lambda out, t: F.cross_entropy(out, t) * loss_scale, max_steps=max_steps,
                      amp="fp16", progress=False, **kw)  # fmt: skip
    with pytest.warns(UserWarning, match="bf16"):  # fp16 on CPU works but is slow: we warn
        trainer.fit()
    return trainer


def test_fp16_with_grad_scaler_learns_and_skips_overflowing_steps():
    """fp16 is meant for GPUs, but the same autocast + GradScaler code runs (slowly) on CPU, so we test it here."""
    ok = fp16_run(20)
    assert ok.scaler is not None and ok.scaler.get_scale() == 2.0**16  # no overflow: scale untouched
    fp32 = mlp(seed=0)
    x, y = xor_data(64)
    ref = Trainer(fp32, torch.optim.SGD(fp32.parameters(), lr=0.1), ShuffledBatches(x, y, batch_size=16),
                  loss_fn=F.cross_entropy, max_steps=20, progress=False).fit()  # fmt: skip
    assert [h["loss"] for h in ok.history] == pytest.approx([h["loss"] for h in ref], rel=0.01, abs=0.01)

    # a huge loss makes fp16 gradients overflow: the scaler must skip the step and halve its scale
    blown = fp16_run(3, loss_scale=1e6)
    for p, q in zip(blown.model.parameters(), mlp(seed=0).parameters()):
        assert torch.equal(p, q)  # every step was skipped
    assert blown.scaler.get_scale() == 2.0**16 / 2**3


def test_fp16_scaler_state_is_checkpointed(tmp_path):
    full = fp16_run(5, loss_scale=1e6)
    fp16_run(2, loss_scale=1e6, checkpoint_dir=tmp_path)
    resumed = fp16_run(5, loss_scale=1e6, checkpoint_dir=tmp_path, resume=True)
    assert resumed.step == 5 and resumed.scaler.get_scale() == full.scaler.get_scale() == 2.0**16 / 2**5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_on_cuda(amp):
    x, y = xor_data(128)
    model = mlp(seed=0).cuda()
    hist = Trainer(model, torch.optim.AdamW(model.parameters(), lr=2e-2), ShuffledBatches(x, y, batch_size=32),
                   loss_fn=F.cross_entropy, max_steps=100, amp=amp, progress=False).fit()  # fmt: skip
    assert all(math.isfinite(h["loss"]) for h in hist)
    assert hist[-1]["loss"] < 0.5 * hist[0]["loss"]


class RegressorWithLoss(nn.Module):
    """A model that returns its own loss, Hugging Face style."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, x, target):
        return {"loss": F.mse_loss(self.linear(x).squeeze(-1), target)}


def test_model_that_returns_its_loss_and_eval_data():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    target = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    model = RegressorWithLoss()
    hist = Trainer(model, torch.optim.Adam(model.parameters(), lr=0.1), ShuffledBatches(x, target, batch_size=16),
                   max_steps=80, eval_every=40, eval_data=[(x, target)], progress=False).fit()  # fmt: skip
    assert hist[0]["loss"] > 1.0
    assert hist[-1]["eval_loss"] < 0.01
    assert [h["step"] for h in hist if "eval_loss" in h] == [40, 80]


def test_iterable_train_data_cycles_through_epochs():
    x, y = xor_data(32)
    batches = [(x[i : i + 8], y[i : i + 8]) for i in range(0, 32, 8)]  # 4 batches, 10 steps -> 2.5 epochs
    seen = []
    model = mlp()
    model.register_forward_pre_hook(lambda m, inputs: seen.append(inputs[0][0, 0].item()))
    Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), batches, loss_fn=F.cross_entropy,
            max_steps=10, progress=False).fit()  # fmt: skip
    assert seen == [batches[i % 4][0][0, 0].item() for i in range(10)]


def test_log_every_keeps_fewer_rows():
    x, y = xor_data(32)
    model = mlp()
    hist = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ShuffledBatches(x, y, batch_size=8),
                   loss_fn=F.cross_entropy, max_steps=10, log_every=4, progress=False).fit()  # fmt: skip
    assert [h["step"] for h in hist] == [4, 8, 10]


def test_nan_loss_raises_clearly():
    x, y = xor_data(32)
    model = mlp()
    with torch.no_grad():
        model[0].weight.fill_(float("nan"))
    trainer = Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), ShuffledBatches(x, y, batch_size=8),
                      loss_fn=F.cross_entropy, max_steps=3, progress=False)  # fmt: skip
    with pytest.raises(FloatingPointError, match="step 1"):
        trainer.fit()


def make(model=None, **kw):
    model = model or mlp()
    x, y = xor_data(16)
    kw.setdefault("train_data", ShuffledBatches(x, y, batch_size=8))
    kw.setdefault("max_steps", 2)
    return Trainer(model, torch.optim.SGD(model.parameters(), lr=0.1), progress=False, **kw)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(max_steps=0), ValueError, "max_steps"),
        (dict(grad_accum_steps=0), ValueError, "grad_accum_steps"),
        (dict(clip_grad_norm=-1.0), ValueError, "clip_grad_norm"),
        (dict(amp="fp8"), ValueError, "amp"),
        (dict(eval_every=5), ValueError, "eval_fn or eval_data"),
        (dict(checkpoint_every=5), ValueError, "checkpoint_dir"),
        (dict(resume=True), ValueError, "checkpoint_dir"),
        (dict(train_data=42), TypeError, "callable get_batch"),
        (dict(lr_schedule=0.1), TypeError, "lr_schedule"),
    ],
)
def test_bad_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        make(**kwargs)


def test_torch_scheduler_object_is_refused_with_a_hint():
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="warmup_cosine"):
        Trainer(
            model, opt, [], max_steps=1, lr_schedule=torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
        )


def test_bad_batches_and_outputs_raise_clearly():
    with pytest.raises(TypeError, match=r"\(inputs\.\.\., target\)"):
        make(train_data=lambda i: torch.zeros(8, 2), loss_fn=F.cross_entropy).fit()
    with pytest.raises(TypeError, match="scalar loss"):
        make(train_data=lambda i: (torch.zeros(8, 2),)).fit()  # model returns logits, no loss_fn
    with pytest.raises(ValueError, match="re-iterated"):
        make(
            train_data=((torch.zeros(8, 2), torch.zeros(8).long()) for _ in range(1)), loss_fn=F.cross_entropy
        ).fit()


def test_accuracy_and_evaluate_weight_by_batch_size():
    scores = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(scores, torch.tensor([0, 1, 1])).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="matching leading dims"):
        accuracy(scores, torch.tensor([0, 1]))
    batches = [(scores[:1], torch.tensor([0])), (scores[1:], torch.tensor([0, 0]))]  # 1/1 right, then 1/2
    assert evaluate(nn.Identity(), batches, accuracy) == pytest.approx(2 / 3)  # weighted, not (1 + 0.5) / 2
