"""Image-classification recipes: tensors from uint8 images, a one-cycle schedule, and a training loop
with on-device augmentation, label smoothing, periodic test evaluation and a stop-at-target rule.

    X, y = image_batch(*load_fashion_mnist("train"))          # (60000, 1, 28, 28) floats in [0, 1]
    model = bestiary.build("resnet", in_channels=1, stem="cifar", layers=(1, 1, 1), d_model=16)
    result = fit_classifier(model, X, y, epochs=5, lr=0.2, augment=Augment(padding=2),
                            eval_data=image_batch(*load_fashion_mnist("test")), target_acc=0.93)
    result.history[-1]["test_acc"], result.time_to_target

Why a loop of our own and not :class:`bestiary.train.Trainer`: this one is specialised for the things a
speed run needs -- a wall-clock budget, stopping the moment a test-accuracy target is reached, and the
time spent evaluating kept *out* of the training time -- and it is short enough to read in one go.

The one-cycle policy: "Super-Convergence: Very Fast Training of Neural Networks Using Large Learning
Rates" (Smith & Topin, 2017, arXiv:1708.07120). Label smoothing: "Rethinking the Inception
Architecture for Computer Vision" (Szegedy et al., 2015, arXiv:1512.00567).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from bestiary.data.augment import normalize
from bestiary.data.loader import ArrayLoader, to_tensor
from bestiary.train.optim import adamw, decay_groups, muon_with_adamw

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

    history: one dict per logged step: ``step``, ``epoch``, ``loss``, ``lr``, ``time_s`` (training time
        only, evaluation excluded) and, at evaluation steps, ``test_acc``/``test_loss``.
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

    ``micro_batch_size``: split each batch into micro-batches of this size, one forward/backward each,
    with their gradients summed before the single optimizer step (gradient accumulation). The update is
    the whole batch's for any batch-independent network; BatchNorm, though, normalises each micro-batch
    with that micro-batch's own statistics -- e.g. per-GPU batches in data-parallel training.

    Evaluates on ``eval_data`` every ``eval_every`` steps and at the end; stops early once test accuracy
    reaches ``target_acc``, or when the training time passes ``max_seconds``. ``on_eval(row)`` is called
    with every history row that carries a test score, as soon as it is computed (e.g. to print it).

    ``budget_seconds`` fits the schedule to a *time* budget instead of ``epochs``: the LR multiplier
    follows elapsed training time / budget, so the anneal ends exactly when the budget does, and
    training stops there. (A schedule sized in epochs is still at a high LR when a time limit cuts it
    short; on a shared machine the number of epochs that fit is not known in advance.)
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
    if not 1 <= micro <= batch_size:
        raise ValueError(f"micro_batch_size must be in [1, batch_size={batch_size}], got {micro_batch_size}")
    if budget_seconds is not None and budget_seconds <= 0:
        raise ValueError(f"budget_seconds must be > 0, got {budget_seconds}")
    if (eval_every is not None or target_acc is not None) and eval_data is None:
        raise ValueError("eval_every / target_acc need eval_data=(x_test, y_test)")

    torch.manual_seed(seed)
    device = x.device
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    # No weight decay on norms and biases (1-D parameters): decaying a BatchNorm scale only fights the norm.
    if optimizer == "adamw":
        opt = adamw(model, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.999))
    elif optimizer == "muon":
        opt = muon_with_adamw(model, lr=muon_lr, adamw_lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.SGD(decay_groups(model, weight_decay), lr=lr, momentum=momentum, nesterov=True)
    for group in opt.param_groups:  # the schedule scales each group's own peak LR
        group.setdefault("initial_lr", group["lr"])

    loader = ArrayLoader(x, y, batch_size=batch_size, seed=seed, drop_last=True)
    total = max(1, int(round(epochs * len(loader))))
    if budget_seconds is not None:  # time decides: the schedule runs on time, the loop stops on time
        total = sys.maxsize
        max_seconds = budget_seconds if max_seconds is None else min(max_seconds, budget_seconds)
    result = FitResult()
    train_time = 0.0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")

    def run_eval(row: dict[str, float]) -> None:
        xt, yt = eval_data  # type: ignore[misc]
        probs = predict_proba(model, xt, mean=mean, std=std, channels_last=channels_last)
        row["test_acc"] = float((probs.argmax(-1) == yt).float().mean())
        row["test_loss"] = float(F.nll_loss(probs.clamp_min(1e-12).log(), yt))
        if on_eval is not None:
            on_eval(row)

    bar = tqdm(total=None if budget_seconds else total, desc="train", disable=not progress)
    step = 0
    model.train()
    batches = iter(loader)
    try:
        while step < total:
            t0 = time.perf_counter()  # the clock includes making the batch: data time is training time
            try:
                xb, yb = next(batches)
            except StopIteration:  # a new epoch: ArrayLoader draws a new order
                batches = iter(loader)
                xb, yb = next(batches)
            if budget_seconds is None:
                mult = _lr_multiplier(schedule, step, total)
            else:  # the same schedule on a 10,000-point grid of the time budget
                mult = _lr_multiplier(schedule, int(1e4 * min(train_time / budget_seconds, 1.0)), 10_000)
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] * mult
            if augment is not None:
                xb = augment(xb)
            if mean is not None:
                xb = normalize(xb, mean, std if std is not None else 1.0)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            opt.zero_grad(set_to_none=True)
            loss = torch.zeros((), device=device)
            # One backward per micro-batch, each loss weighted by its share of the batch: the summed
            # gradient is the whole batch's mean-loss gradient (what BatchNorm sees is the micro-batch).
            for xm, ym in zip(xb.split(micro), yb.split(micro), strict=True):
                with autocast:
                    logits = model(xm)
                part = F.cross_entropy(logits.float(), ym, label_smoothing=label_smoothing) * (
                    len(ym) / len(yb)
                )
                part.backward()
                loss = loss + part.detach()
            if clip_grad_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), clip_grad_norm)
            opt.step()
            step += 1
            loss_value = float(loss.detach())  # syncs the device, so the timing below is honest
            train_time += time.perf_counter() - t0
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"loss is {loss_value} at step {step}: lower the learning rate")
            row = {"step": step, "epoch": step / len(loader), "loss": loss_value,
                   "lr": lr * mult, "time_s": train_time}  # fmt: skip
            due_eval = eval_data is not None and (
                step == total or (eval_every is not None and step % eval_every == 0)
            )
            if due_eval:
                run_eval(row)
                model.train()
            out_of_time = max_seconds is not None and train_time >= max_seconds
            if out_of_time and eval_data is not None and not due_eval:
                run_eval(row)  # always end with a test score
                model.train()
            if due_eval or out_of_time or step % log_every == 0 or step == total:
                result.history.append(row)
            bar.update(1)
            if due_eval:
                bar.set_postfix(loss=f"{loss_value:.3f}", acc=f"{row['test_acc']:.4f}", refresh=False)
            if "test_acc" in row and target_acc is not None and row["test_acc"] >= target_acc:
                result.time_to_target, result.stopped = train_time, "target"
                return _finish(result, step, bar)
            if out_of_time:
                result.stopped = "max_seconds"
                return _finish(result, step, bar)
    finally:
        bar.close()
    return _finish(result, step, bar)


def _lr_multiplier(schedule: str, step: int, total: int) -> float:
    if schedule == "onecycle":
        return one_cycle(step, total)
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    return 1.0


def _finish(result: FitResult, step: int, bar: tqdm) -> FitResult:
    result.steps = step
    bar.close()
    return result
