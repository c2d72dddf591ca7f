"""Image-classification recipes: tensors from uint8 images, a one-cycle schedule, and a training loop
with on-device augmentation, label smoothing, periodic test evaluation and a stop-at-target rule.

    X, y = image_batch(*load_fashion_mnist("train"))          # (60000, 1, 28, 28) floats in [0, 1]
    model = bestiary.build("resnet", in_channels=1, stem="cifar", depths=(1, 1, 1), d_model=16)
    result = fit_classifier(model, X, y, epochs=5, lr=0.2, augment=Augment(padding=2),
                            eval_data=image_batch(*load_fashion_mnist("test")), target_acc=0.93)
    result.history[-1]["test_acc"], result.time_to_target

``fit_classifier`` is a recipe, not a loop: it builds the optimizer, the batches (augmented and
normalised on the fly) and the callbacks a speed run needs -- a wall-clock budget, stopping the moment
a test-accuracy target is reached, the LR schedule fitted to the time budget -- and hands them to
:class:`bestiary.train.Trainer`, which keeps the time spent evaluating *out* of the training time.

The one-cycle policy: "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning
Rates" (Smith & Topin, 2017, arXiv:1708.07120). Label smoothing: "Rethinking the Inception
Architecture for Computer Vision" (Szegedy et al., 2015, arXiv:1512.00567).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bestiary.data.augment import normalize
from bestiary.data.loader import ArrayLoader, to_tensor
from bestiary.train.callbacks import Callback, ScheduleOnTime, StopAtTarget, TimeLimit
from bestiary.train.optim import OptimizerChain, adamw, decay_groups, muon_with_adamw
from bestiary.train.trainer import Trainer

__all__ = [
    "FitResult",
    "accuracy_of",
    "fit_classifier",
    "image_batch",
    "one_cycle",
    "predict_proba",
]

# Mean and standard deviation of the training pixels (in [0, 1]); computed from the training split.
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def image_batch(
    images: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor | None = None,
    *,
    pad_to: int | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """uint8 images (N, H, W) or (N, C, H, W) -> float32 (N, C, H, W) in [0, 1] (and labels as int64).

    ``pad_to``: zero-pad symmetrically to ``pad_to`` x ``pad_to`` (e.g. 28 -> 32, for models whose
    downsampling needs a power of two).
    """
    x = to_tensor(images)
    if x.dtype != torch.uint8:
        raise TypeError(f"images must be uint8 (0..255), got {x.dtype}")
    if x.dim() == 3:
        x = x[:, None]  # (N, 1, H, W)
    if x.dim() != 4:
        raise ValueError(f"images must have shape (N, H, W) or (N, C, H, W), got {tuple(x.shape)}")
    x = x.to(device).float().div_(255.0)  # (N, C, H, W)
    if pad_to is not None:
        H, W = x.shape[-2:]
        if pad_to < max(H, W):
            raise ValueError(f"pad_to={pad_to} is smaller than the images ({H}x{W})")
        top, left = (pad_to - H) // 2, (pad_to - W) // 2
        x = F.pad(x, (left, pad_to - W - left, top, pad_to - H - top))  # (N, C, pad_to, pad_to)
    if labels is None:
        return x
    y = to_tensor(labels).to(device).long()
    if y.shape != (len(x),):
        raise ValueError(f"labels must have shape ({len(x)},), got {tuple(y.shape)}")
    return x, y


def one_cycle(
    step: int, total: int, pct_start: float = 0.25, div: float = 25.0, final_div: float = 1e3
) -> float:
    """LR multiplier of the one-cycle policy: cosine warm-up from 1/div to 1 over the first
    ``pct_start`` of the run, then cosine annealing down to 1/(div * final_div).

    A large peak LR in the middle of the run acts as a regulariser; the long anneal at the end lets
    the weights settle into the minimum it found -- the combination trains in far fewer steps.
    """
    if total < 1:
        raise ValueError(f"total must be >= 1, got {total}")
    if not 0.0 < pct_start < 1.0:
        raise ValueError(f"pct_start must be in (0, 1), got {pct_start}")
    warm = max(1, int(total * pct_start))
    lo, end = 1.0 / div, 1.0 / (div * final_div)
    if step < warm:
        t = step / warm
        return lo + (1.0 - lo) * 0.5 * (1.0 - math.cos(math.pi * t))
    t = min(1.0, (step - warm) / max(1, total - warm))
    return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t))


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    x: torch.Tensor,
    *,
    batch_size: int = 1000,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    channels_last: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (N, num_classes) for images ``x`` (N, C, H, W), in eval mode, on ``x``'s device.

    Pass the same ``mean``/``std`` the model was trained with (``fit_classifier`` normalises inside).
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            if mean is not None:
                xb = normalize(xb, mean, std if std is not None else 1.0)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out.append(model(xb).float().softmax(-1))
    finally:
        model.train(was_training)
    return torch.cat(out)  # (N, num_classes)


def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, **kwargs) -> float:
    """Top-1 accuracy of ``model`` on (x, y); keyword arguments as :func:`predict_proba`."""
    return float((predict_proba(model, x, **kwargs).argmax(-1) == y).float().mean())


@dataclass
class FitResult:
    """What :func:`fit_classifier` returns.

    history: one dict per logged step: ``step``, ``epoch``, ``loss``, ``lr`` (the first param group's:
        Muon's with ``optimizer="muon"``), ``time_s`` (training time only, evaluation excluded),
        ``grad_norm`` with ``clip_grad_norm`` and, at evaluation steps, ``test_acc``/``test_loss``.
    time_to_target: training seconds when ``test_acc`` first reached ``target_acc`` (None if never).
    steps: optimizer steps taken. stopped: why the loop ended ("done", "target", "max_seconds").
    """

    history: list[dict[str, float]] = field(default_factory=list)
    time_to_target: float | None = None
    steps: int = 0
    stopped: str = "done"

    @property
    def evals(self) -> list[dict[str, float]]:
        """The history rows that carry a test evaluation."""
        return [row for row in self.history if "test_acc" in row]

    @property
    def final_acc(self) -> float | None:
        evals = self.evals
        return evals[-1]["test_acc"] if evals else None


def fit_classifier(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: float = 1.0,
    batch_size: int = 128,
    micro_batch_size: int | None = None,
    lr: float = 1e-3,
    optimizer: str = "adamw",
    muon_lr: float = 0.05,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    schedule: str = "onecycle",
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    label_smoothing: float = 0.0,
    amp: str | None = None,
    channels_last: bool = False,
    eval_data: tuple[torch.Tensor, torch.Tensor] | None = None,
    eval_every: int | None = None,
    target_acc: float | None = None,
    max_seconds: float | None = None,
    budget_seconds: float | None = None,
    clip_grad_norm: float | None = None,
    log_every: int = 10,
    seed: int = 0,
    progress: bool = True,
    on_eval: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``model`` on images ``x`` (N, C, H, W) in [0, 1] and labels ``y`` (N,) with cross-entropy.

    Each batch: ``augment`` (on raw [0, 1] pixels, so crop padding is true background) -> ``normalize``
    with ``mean``/``std`` if given -> forward (optionally channels_last, bf16 autocast) -> label-smoothed
    cross-entropy -> backward -> optimizer step with the LR multiplier of ``schedule``
    ("onecycle", "cosine" or "constant"). ``optimizer``: "adamw", "sgd" (Nesterov momentum) or "muon"
    (Muon at peak LR ``muon_lr`` for the conv kernels, AdamW at ``lr`` for everything else:
    :func:`bestiary.train.muon_with_adamw`).

    ``micro_batch_size`` (a divisor of ``batch_size``): split each batch into micro-batches of this size,
    one forward/backward each, with their gradients summed before the single optimizer step (the
    Trainer's gradient accumulation). The update is the whole batch's for any batch-independent network;
    BatchNorm, though, normalises each micro-batch with that micro-batch's own statistics -- e.g. per-GPU
    batches in data-parallel training.

    Evaluates on ``eval_data`` every ``eval_every`` steps and at the end; stops early once test accuracy
    reaches ``target_acc``, or when the training time passes ``max_seconds``. ``on_eval(row)`` is called
    with every history row that carries a test score, as soon as it is computed (e.g. to print it).

    ``budget_seconds`` fits the schedule to a *time* budget instead of ``epochs``: the LR multiplier
    follows elapsed training time / budget, so the anneal ends exactly when the budget does, and
    training stops there. (A schedule sized in epochs is still at a high LR when a time limit cuts it
    short; on a shared machine the number of epochs that fit is not known in advance.)

    The training loop is :class:`bestiary.train.Trainer` (seeded with ``seed``); this function only
    chooses its parts: optimizer, batches, loss, schedule and the callbacks that stop the run.
    """
    if x.dim() != 4 or not x.is_floating_point():
        raise ValueError(f"x must be float images (N, C, H, W) in [0, 1], got {x.dtype} {tuple(x.shape)}")
    if y.shape != (len(x),):
        raise ValueError(f"y must have shape ({len(x)},), got {tuple(y.shape)}")
    if optimizer not in ("adamw", "sgd", "muon"):
        raise ValueError(f"optimizer must be 'adamw', 'sgd' or 'muon', got {optimizer!r}")
    if schedule not in ("onecycle", "cosine", "constant"):
        raise ValueError(f"schedule must be 'onecycle', 'cosine' or 'constant', got {schedule!r}")
    if amp not in (None, "bf16"):
        raise ValueError(f"amp must be None or 'bf16', got {amp!r}")
    micro = batch_size if micro_batch_size is None else micro_batch_size
    if not 1 <= micro <= batch_size or batch_size % micro:
        raise ValueError(
            f"micro_batch_size must divide batch_size={batch_size} (1 <= micro <= batch), got {micro_batch_size}"
        )
    if budget_seconds is not None and budget_seconds <= 0:
        raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
    if (eval_every is not None or target_acc is not None) and eval_data is None:
        raise ValueError("eval_every / target_acc need eval_data=(x_test, y_test)")

    model.to(x.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    loader = ArrayLoader(x, y, batch_size=batch_size, seed=seed, drop_last=True)
    batches = _TrainBatches(loader, batch_size // micro, augment, mean, std, channels_last)
    callbacks: list[object] = [_LogEpochAndEvals(len(loader), on_eval)]
    total: int | None = max(1, int(round(epochs * len(loader))))
    lr_schedule = partial(_lr_multiplier, schedule, total=total)
    if budget_seconds is not None:  # time decides: the schedule runs on time, the run stops on time
        total, lr_schedule = None, None
        callbacks.append(ScheduleOnTime(partial(_lr_multiplier, schedule), budget_seconds))
        max_seconds = budget_seconds if max_seconds is None else min(max_seconds, budget_seconds)
    if max_seconds is not None:
        callbacks.append(TimeLimit(max_seconds))
    target = StopAtTarget("test_acc", target_acc) if target_acc is not None else None
    if target is not None:
        callbacks.append(target)

    def score(model: nn.Module) -> dict[str, float]:  # the Trainer calls it in eval mode, outside the clock
        xt, yt = eval_data  # type: ignore[misc]
        probs = predict_proba(model, xt, mean=mean, std=std, channels_last=channels_last)  # (N, classes)
        return {
            "test_acc": float((probs.argmax(-1) == yt).float().mean()),
            "test_loss": float(F.nll_loss(probs.clamp_min(1e-12).log(), yt)),
        }

    trainer = Trainer(
        model, _make_optimizer(model, optimizer, lr, muon_lr, weight_decay, momentum), batches,
        max_steps=total, loss_fn=partial(_smoothed_cross_entropy, label_smoothing=label_smoothing),
        grad_accum_steps=batch_size // micro, clip_grad_norm=clip_grad_norm, lr_schedule=lr_schedule,
        eval_every=eval_every, eval_fn=score if eval_data is not None else None, amp=amp, seed=seed,
        log_every=log_every, progress=progress, device=x.device, callbacks=callbacks,
    )  # fmt: skip
    trainer.fit()
    return FitResult(
        history=trainer.history,
        time_to_target=target.reached_at_s if target else None,
        steps=trainer.step,
        stopped=trainer.stop_reason or "done",
    )


def _make_optimizer(
    model: nn.Module, name: str, lr: float, muon_lr: float, weight_decay: float, momentum: float
) -> torch.optim.Optimizer | OptimizerChain:
    """No weight decay on norms and biases (1-D parameters): decaying a BatchNorm scale only fights the norm."""
    if name == "adamw":
        return adamw(model, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999))
    if name == "muon":
        return muon_with_adamw(model, lr=muon_lr, adamw_lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(decay_groups(model, weight_decay), lr=lr, momentum=momentum, nesterov=True)


def _smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, label_smoothing: float
) -> torch.Tensor:
    # float(): under bf16 autocast the logits are bf16; the loss (a log-sum-exp) is taken in float32.
    return F.cross_entropy(logits.float(), target, label_smoothing=label_smoothing)


class _TrainBatches:
    """The Trainer's micro-batch ``i`` (its ``get_batch(i)``): micro-batch ``i % k`` of step ``i // k``'s batch.

    Each step's whole batch is augmented (on raw [0, 1] pixels, so crop padding is true background),
    normalised and made channels_last *once*, then cut into ``k`` micro-batches: the augmentation's
    random draws are then the same whatever ``micro_batch_size`` is. The batch of step s is
    ``ArrayLoader.batch(s)``, the s-th batch of the epochs' seeded shuffles.
    """

    def __init__(self, loader: ArrayLoader, k: int, augment, mean, std, channels_last: bool) -> None:
        self.loader, self.k, self.augment = loader, k, augment
        self.mean, self.std, self.channels_last = mean, std, channels_last
        self._step, self._micro_batches = -1, []

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        step, micro = divmod(index, self.k)
        if step != self._step:  # the Trainer asks for steps in order: make each step's batch once
            xb, yb = self.loader.batch(step)  # (B, C, H, W), (B,)
            if self.augment is not None:
                xb = self.augment(xb)
            if self.mean is not None:
                xb = normalize(xb, self.mean, self.std if self.std is not None else 1.0)
            if self.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            self._step, self._micro_batches = step, list(zip(xb.chunk(self.k), yb.chunk(self.k), strict=True))
        return self._micro_batches[micro]  # (B / k, C, H, W), (B / k,)


class _LogEpochAndEvals(Callback):
    """Adds ``epoch`` to every row and hands each evaluated row to the user's ``on_eval(row)``."""

    def __init__(self, batches_per_epoch: int, on_eval: Callable[[dict[str, float]], None] | None) -> None:
        self.batches_per_epoch, self.user_on_eval = batches_per_epoch, on_eval

    def on_step_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        row["epoch"] = row["step"] / self.batches_per_epoch

    def on_eval(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.user_on_eval is not None:
            self.user_on_eval(row)


def _lr_multiplier(schedule: str, step: int, total: int) -> float:
    if schedule == "onecycle":
        return one_cycle(step, total)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    return 1.0
