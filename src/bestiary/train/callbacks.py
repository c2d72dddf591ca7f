"""Callbacks: small objects the :class:`~bestiary.train.Trainer` calls at fixed points of every step.

They add behaviour to the one training loop instead of a second loop being written. A callback is any
object with some of these methods (each optional; subclass :class:`Callback` to see them documented):

    on_step_begin(trainer)       before the step's batches are drawn (inside the training clock), e.g.
                                 to set the learning rate
    on_step_end(trainer, row)    after the optimizer step; ``row`` is the step's history row
                                 (``step``, ``loss``, ``lr``, ``time_s``, ...): add keys to log more
    on_eval(trainer, row)        after an evaluation, its metrics already in ``row``

A callback ends the run by setting ``trainer.stop_reason`` (a short string such as ``"target"``). The
Trainer then evaluates one last time if it has something to evaluate (so a run always ends with a
score), logs the row, writes its last checkpoint and returns.

``trainer.train_seconds`` is the training clock: batches, forward, backward and optimizer steps only.
Evaluation, checkpoints and the hooks that run after the step are outside it, so a time budget buys
the same amount of training however often you evaluate.

    trainer = Trainer(model, opt, data, max_steps=None, eval_fn=score, eval_every=100,
                      callbacks=[TimeLimit(60), StopAtTarget("acc", 0.93)])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for annotations: trainer.py imports nothing from here at run time either way
    from bestiary.train.trainer import Trainer


class Callback:
    """The hooks a Trainer calls, all doing nothing. Override the ones you need."""

    def on_step_begin(self, trainer: Trainer) -> None:
        """Before step ``trainer.step + 1`` draws its batches (counted as training time)."""

    def on_step_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        """After the optimizer step; ``row`` is this step's history row (add keys to it to log them)."""

    def on_eval(self, trainer: Trainer, row: dict[str, float]) -> None:
        """After an evaluation; ``row`` holds the step's row plus the evaluation's metrics."""


class TimeLimit(Callback):
    """Stop once ``trainer.train_seconds`` (training time, evaluation excluded) reaches ``seconds``."""

    def __init__(self, seconds: float, reason: str = "max_seconds") -> None:
        if not seconds >= 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self.seconds, self.reason = seconds, reason

    def on_step_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if trainer.train_seconds >= self.seconds:
            trainer.stop_reason = self.reason


class StopAtTarget(Callback):
    """Stop at the first evaluation where ``row[metric] >= target`` (e.g. test accuracy >= 0.93).

    Remembers when: ``reached_at_s`` (training seconds) and ``reached_at_step`` -- the "time to target"
    of a speed run. The reason it sets overrides another stop requested in the same step: reaching the
    target is the more informative outcome.
    """

    def __init__(self, metric: str, target: float, reason: str = "target") -> None:
        self.metric, self.target, self.reason = metric, target, reason
        self.reached_at_s: float | None = None
        self.reached_at_step: int | None = None

    def on_eval(self, trainer: Trainer, row: dict[str, float]) -> None:
        if row.get(self.metric, float("-inf")) >= self.target:
            self.reached_at_s, self.reached_at_step = row["time_s"], trainer.step
            trainer.stop_reason = self.reason


class ScheduleOnTime(Callback):
    """Run a step schedule ``schedule(step, total)`` on *time*: before each step, every param group's LR
    becomes its peak ``group["initial_lr"]`` times ``schedule(int(grid * t), grid)``, where ``t`` is the
    fraction of the ``seconds`` budget already trained (capped at 1).

    Why: a schedule sized in steps is still at a high LR when a time limit cuts it short, and on a shared
    machine nobody knows in advance how many steps fit. On time, the anneal ends when the budget does.
    Pair it with ``TimeLimit(seconds)`` and give the Trainer no ``lr_schedule`` of its own.
    """

    def __init__(self, schedule: Callable[[int, int], float], seconds: float, grid: int = 10_000) -> None:
        if not seconds > 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.schedule, self.seconds, self.grid = schedule, seconds, grid

    def on_step_begin(self, trainer: Trainer) -> None:
        done = min(trainer.train_seconds / self.seconds, 1.0)
        multiplier = self.schedule(int(self.grid * done), self.grid)
        for group in trainer.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * multiplier
