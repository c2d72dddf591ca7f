"""Trainer callbacks: hook order, stopping (a final evaluation, row and checkpoint at the stopping step), a time
limit on the training clock only, stop-at-target, and a schedule run on time from each group's own peak LR.

Time is faked (the Trainer's ``time`` module is replaced by a clock the data function moves 1 s per batch),
so every assertion is exact and nothing depends on the machine's speed."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bestiary.train.trainer as trainer_module
from bestiary.train import ShuffledBatches, Trainer, latest_checkpoint
from bestiary.train.callbacks import Callback, ScheduleOnTime, StopAtTarget, TimeLimit


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(trainer_module, "time", fake)
    return fake


def make(clock, *, eval_seconds=0.0, model=None, optimizer=None, **kw):
    """A linear classifier whose every batch costs 1 s of training and every evaluation ``eval_seconds``."""
    torch.manual_seed(0)
    model = model or nn.Linear(2, 2)
    x = torch.randn(32, 2)
    batches = ShuffledBatches(x, (x[:, 0] > 0).long(), batch_size=8)

    def data(i):
        clock.now += 1.0
        return batches(i)

    def slow_eval(m):
        clock.now += eval_seconds
        return {"acc": 0.5}

    kw.setdefault("eval_fn", slow_eval)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, optimizer, data, loss_fn=F.cross_entropy, progress=False, **kw)


class Recorder(Callback):
    def __init__(self, stop_at=None):
        self.calls, self.stop_at = [], stop_at

    def on_step_begin(self, trainer):
        self.calls.append(("begin", trainer.step))

    def on_step_end(self, trainer, row):
        self.calls.append(("end", trainer.step))
        if trainer.step == self.stop_at:
            trainer.stop_reason = "enough"

    def on_eval(self, trainer, row):
        self.calls.append(("eval", trainer.step, row["acc"]))


def test_hooks_run_in_order_and_a_callback_stop_ends_with_an_eval_a_row_and_a_checkpoint(clock, tmp_path):
    recorder = Recorder(stop_at=3)
    trainer = make(
        clock, max_steps=10, eval_every=2, checkpoint_dir=tmp_path, callbacks=[recorder], log_every=5
    )
    trainer.fit()
    assert recorder.calls == [
        ("begin", 0), ("end", 1),
        ("begin", 1), ("end", 2), ("eval", 2, 0.5),
        ("begin", 2), ("end", 3), ("eval", 3, 0.5),  # step 3 is not an eval_every step: the final evaluation
    ]  # fmt: skip
    assert trainer.stop_reason == "enough" and trainer.step == 3
    assert [row["step"] for row in trainer.history] == [2, 3]  # eval rows; step 3 logged as the last
    assert latest_checkpoint(tmp_path).name == "step_00000003"


def test_time_limit_counts_training_time_and_not_evaluation(clock):
    # Each step costs 1 s, each evaluation 100 s: a 5 s limit must allow exactly 5 steps.
    trainer = make(clock, max_steps=None, eval_every=2, eval_seconds=100.0, callbacks=[TimeLimit(5)])
    trainer.fit()
    assert trainer.stop_reason == "max_seconds" and trainer.step == 5 and trainer.train_seconds == 5.0
    assert [row["time_s"] for row in trainer.history] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [row["step"] for row in trainer.history if "acc" in row] == [2, 4, 5]  # ends with a score
    with pytest.raises(ValueError, match="callback"):
        make(clock, max_steps=None)  # nothing would ever stop it


def test_stop_at_target_records_when_and_wins_over_a_time_limit_in_the_same_step(clock):
    trainer = None

    def rising_acc(model):  # a stand-in metric that improves by 0.1 per step
        return {"acc": trainer.step / 10}

    target = StopAtTarget("acc", 0.35)
    trainer = make(clock, max_steps=20, eval_every=1, eval_fn=rising_acc, callbacks=[TimeLimit(4), target])
    trainer.fit()
    assert trainer.stop_reason == "target" and trainer.step == 4  # acc 0.4 >= 0.35 at step 4, as time ran out
    assert target.reached_at_step == 4 and target.reached_at_s == trainer.history[-1]["time_s"] == 4.0


def test_schedule_on_time_scales_each_group_from_its_own_peak(clock):
    model = nn.Linear(2, 2)
    two_peaks = torch.optim.SGD([{"params": [model.weight], "lr": 0.1}, {"params": [model.bias], "lr": 0.01}])

    class LogSecondGroup(Callback):
        def on_step_end(self, trainer, row):
            row["lr1"] = trainer.optimizer.param_groups[1]["lr"]

    def linear_decay(step, total):
        return 1.0 - step / total

    callbacks = [ScheduleOnTime(linear_decay, 8.0), TimeLimit(8), LogSecondGroup()]
    trainer = make(clock, max_steps=None, model=model, optimizer=two_peaks, callbacks=callbacks, eval_fn=None)
    trainer.fit()
    done = [min(s / 8.0, 1.0) for s in range(8)]  # fraction of the budget trained before steps 1..8
    expected = [linear_decay(int(10_000 * d), 10_000) for d in done]
    assert trainer.step == 8
    assert [row["lr"] for row in trainer.history] == pytest.approx([0.1 * m for m in expected])
    assert [row["lr1"] for row in trainer.history] == pytest.approx([0.01 * m for m in expected])
    with pytest.raises(ValueError, match="seconds"):
        ScheduleOnTime(linear_decay, 0.0)
