"""A small, explicit training loop: the ``Trainer``.

Everything a real training run needs, in one class you can read top to bottom:

- **progress and history**: a ``tqdm.auto`` bar (rank 0 only, ``progress=False`` to hide) and a list
  of dicts ``{"step", "loss", "lr", "time_s", ...}`` -- ``pandas.DataFrame(trainer.history)`` plots it;
  ``time_s`` is training time only (evaluation and checkpoints excluded);
- **periodic evaluation**: ``eval_fn(model) -> float | dict`` and/or ``eval_data`` (batches, scored
  with the training loss) every ``eval_every`` steps and at the end;
- **gradient accumulation** over ``grad_accum_steps`` micro-batches and **clipping** of the global norm;
- **learning-rate schedule**: a multiplier ``f(step)``, e.g. ``partial(warmup_cosine, warmup=..., total=...)``,
  of each param group's peak LR ``group["initial_lr"]``;
- **one optimizer or several**: a ``torch.optim.Optimizer`` or an :class:`~bestiary.train.OptimizerChain`
  (e.g. Muon for the kernels + AdamW for the rest, :func:`~bestiary.train.muon_with_adamw`);
- **callbacks** (:mod:`bestiary.train.callbacks`): objects called before and after every step and after
  every evaluation, which may stop the run (``trainer.stop_reason = "..."``) -- a time limit, a target
  accuracy, a schedule on time; ``max_steps=None`` trains until one of them stops it;
- **mixed precision**: ``amp="bf16"`` (autocast, CPU or GPU) or ``amp="fp16"`` (autocast + GradScaler, for GPUs);
- **seeds and exact resume**: checkpoints (safetensors + JSON, atomic) hold the model, the optimizer, the
  step, the history and every RNG state, so stopping and resuming gives bit-identical weights on CPU;
  loading is all or nothing: every tensor and field is checked before the model, the optimizer or the
  Trainer changes (:func:`~bestiary.train.checkpoint.stage_checkpoint`);
- **no silent NaN**: the loss is checked before the optimizer steps (and, with ``check_grads=True``, every
  gradient), so a bad batch raises ``FloatingPointError`` naming the step, the batch and the likely causes
  while the weights and the optimizer state are still those of the last good step;
- **torchrun**: launched with ``torchrun --nproc_per_node=N``, each process joins the group (Gloo on
  CPU, NCCL on GPU), the model is wrapped once -- ``parallel="ddp"`` (default): ``DistributedDataParallel``,
  a full replica per rank; ``parallel="fsdp2"``: sharded with FSDP2's ``fully_shard``, each rank holding
  1/N of the weights, gradients and optimizer state (:mod:`bestiary.train.sharded`) -- and each rank
  trains on its slice of the global batch. Only rank 0 prints; checkpoints are rank 0's safetensors
  files under DDP and every rank's shards (DCP, safetensors storage) under FSDP2. Everything else is
  one code path for both.

The data contract is described in :mod:`bestiary.train.batches`: ``train_data`` is a callable
``get_batch(i)`` (random access by micro-batch index -- resume is exact by construction) or an iterable
of batches; either way it yields *global* batches that the Trainer shards over processes.

Example::

    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    trainer = Trainer(model, opt, ShuffledBatches(x, y, batch_size=32), loss_fn=F.cross_entropy,
                      max_steps=500, lr_schedule=partial(warmup_cosine, warmup=50, total=500))
    history = trainer.fit()
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from bestiary._runtime import seed_everything
from bestiary.io import FileFormatError
from bestiary.train import distributed, sharded
from bestiary.train.batches import shard_batch, to_device
from bestiary.train.checkpoint import (
    CheckpointMismatchError,
    StagedCheckpoint,
    check_rng_state,
    fallback_advice,
    latest_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    stage_checkpoint,
)
from bestiary.train.metrics import AMP_DTYPES, LossFn, autocast_context, compute_loss, evaluate
from bestiary.train.optim import OptimizerChain

EvalFn = Callable[[nn.Module], "float | torch.Tensor | dict[str, float]"]


def _first_non_finite(
    named_tensors: Iterable[tuple[str, torch.Tensor | None]],
) -> tuple[str, torch.Tensor] | None:
    """The first ``(name, tensor)`` holding an inf or NaN, or None. One device sync however many tensors.

    FSDP2-sharded tensors: each rank checks its own rows and one all-reduce combines the flags, so that
    every rank finds the same tensor (and raises the same error).
    """
    named = [(name, t) for name, t in named_tensors if t is not None]
    if not named:
        return None
    # one flag per tensor, on the device
    finite = torch.stack([torch.isfinite(sharded.local_part(t)).all() for _, t in named])
    if any(sharded.is_sharded(t) for _, t in named):
        finite = finite.int()
        dist.all_reduce(finite, op=dist.ReduceOp.MIN)
        finite = finite.bool()
    if bool(finite.all()):
        return None
    return named[int((~finite).nonzero()[0, 0])]


def _count_non_finite(tensor: torch.Tensor) -> str:
    """E.g. ``"3 NaN and 0 inf among its 192 values"`` (of the whole tensor, when it is sharded)."""
    tensor = sharded.full_tensor(tensor)
    nan, inf = int(tensor.isnan().sum()), int(tensor.isinf().sum())
    return f"{nan} NaN and {inf} inf among its {tensor.numel()} values"


# What a non-finite loss under mixed precision most often means.
_AMP_CAUSES = {
    "fp16": "an activation beyond float16's range (65504) in the forward pass of amp='fp16' (the GradScaler "
    "protects gradients only): try amp='bf16'",
    "bf16": "bfloat16's coarse precision in the forward pass of amp='bf16' (a softmax or log computed in "
    "bfloat16): check whether amp=None stays finite",
}


@dataclass
class _TrainerState:
    """The Trainer's own part of a checkpoint, checked and ready to assign."""

    history: list[dict[str, float]]
    base_lrs: list[float]
    train_seconds: float
    scaler: dict[str, Any] | None  # GradScaler.state_dict(), when this run has an enabled scaler
    rng: tuple[dict[str, torch.Tensor], dict[str, Any]] | None  # None: another world size, reseed


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")


class Trainer:
    """Train ``model`` with ``optimizer`` for ``max_steps`` optimizer steps. See the module docstring.

    Args:
        model: the module to train (trained on its own device; under torchrun with GPUs, on
            ``cuda:LOCAL_RANK``).
        optimizer: a ``torch.optim.Optimizer`` or an ``OptimizerChain`` built on ``model.parameters()``.
            Each param group's peak LR, which ``lr_schedule`` multiplies, is ``group["initial_lr"]``
            (recorded from its ``lr`` when missing, as torch's schedulers do).
        train_data: ``get_batch(i)`` callable or iterable of global batches (see module docstring).
        max_steps: number of optimizer steps to reach (a resumed run continues up to it); ``None``: train
            until a callback sets ``stop_reason`` (e.g. ``TimeLimit``).
        loss_fn: ``loss_fn(model(*inputs), target)`` for batches ``(inputs..., target)``; ``None`` if
            the model returns its own loss.
        grad_accum_steps: micro-batches per optimizer step (each ``train_data`` batch is one micro-batch).
        clip_grad_norm: clip the global gradient L2 norm to this value (logged as ``grad_norm``). Without a
            GradScaler, a non-finite norm raises instead of being "clipped" into NaN weights.
        check_grads: after backward, check every gradient for inf/NaN before the optimizer steps and name
            the first bad parameter (costs one pass over the gradients). Not done under ``amp="fp16"``,
            whose GradScaler expects overflowing gradients and skips those steps itself.
        lr_schedule: ``f(step) -> multiplier`` of each group's peak LR, e.g. ``partial(warmup_cosine, ...)``.
        eval_every: evaluate every this many steps; with ``eval_fn``/``eval_data`` given, the Trainer always
            evaluates after the last step too.
        eval_fn: ``eval_fn(model) -> float | dict``, called in eval mode under ``torch.no_grad()``.
        eval_data: batches scored with ``loss_fn`` (logged as ``eval_loss``).
        checkpoint_dir: where to write checkpoints; ``None`` for none.
        checkpoint_every: save every this many steps (and after the last step).
        keep_last: how many checkpoints to keep on disk.
        resume: continue from ``checkpoint_dir/latest`` if it exists.
        amp: ``None``, ``"bf16"`` or ``"fp16"`` (meant for GPUs; works, slowly, on CPU).
        seed: seeds Python/NumPy/torch at the start of a fresh run (rank r uses ``seed + r``).
        log_every: append a history row every this many steps.
        progress: show a tqdm bar.
        device: override the device (default: the model's).
        callbacks: objects with any of ``on_step_begin(trainer)``, ``on_step_end(trainer, row)``,
            ``on_eval(trainer, row)``, called in list order (see :mod:`bestiary.train.callbacks`).
        parallel: how several torchrun processes share the work (no effect in a single process):
            ``"ddp"`` -- a full replica per rank, gradients all-reduced; ``"fsdp2"`` -- the model sharded in
            place by ``fully_shard`` (its parameters become ``DTensor`` shards: pass a fresh optimizer,
            which the Trainer re-points at them), checkpoints sharded (:mod:`bestiary.train.sharded`).
            ``"fsdp2"`` refuses ``amp="fp16"`` (each shard's GradScaler would decide on overflow alone).
            Under FSDP2 every rank must run the same forwards: ``evaluate()`` and ``save_checkpoint()``
            are collective.
    """

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | OptimizerChain,
        train_data: Callable[[int], Any] | Iterable[Any],
        *,
        max_steps: int | None,
        loss_fn: LossFn | None = None,
        grad_accum_steps: int = 1,
        clip_grad_norm: float | None = None,
        check_grads: bool = False,
        lr_schedule: Callable[[int], float] | None = None,
        eval_every: int | None = None,
        eval_fn: EvalFn | None = None,
        eval_data: Iterable[Any] | None = None,
        checkpoint_dir: str | os.PathLike | None = None,
        checkpoint_every: int | None = None,
        keep_last: int | None = 3,
        resume: bool = False,
        amp: str | None = None,
        seed: int = 0,
        log_every: int = 1,
        progress: bool = True,
        device: torch.device | str | None = None,
        callbacks: Iterable[object] = (),
        parallel: str = "ddp",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, (torch.optim.Optimizer, OptimizerChain)):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer or an OptimizerChain, got {type(optimizer).__name__}"
            )
        callbacks = list(callbacks)
        if max_steps is None and not callbacks:
            raise ValueError(
                "max_steps=None trains until a callback stops it: pass e.g. callbacks=[TimeLimit(60)]"
            )
        for name, value in [("max_steps", max_steps), ("grad_accum_steps", grad_accum_steps),
                            ("eval_every", eval_every), ("checkpoint_every", checkpoint_every),
                            ("keep_last", keep_last), ("log_every", log_every)]:  # fmt: skip
            _check_positive(name, value)
        if clip_grad_norm is not None and not clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be > 0 or None, got {clip_grad_norm!r}")
        if amp is not None and amp not in AMP_DTYPES:
            raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
        if parallel not in ("ddp", "fsdp2"):
            raise ValueError(f"parallel must be 'ddp' or 'fsdp2', got {parallel!r}")
        if parallel == "fsdp2" and amp == "fp16":
            raise ValueError(
                "parallel='fsdp2' does not support amp='fp16': its GradScaler would skip a step on the ranks "
                "whose shard overflowed and take it on the others. Use amp='bf16' (no scaler needed)"
            )
        if isinstance(lr_schedule, torch.optim.lr_scheduler.LRScheduler):
            raise TypeError(
                "lr_schedule takes a multiplier function f(step) -> float, not a torch scheduler object, "
                "e.g. functools.partial(warmup_cosine, warmup=100, total=1000). Being stateless, it makes resume exact."
            )
        if lr_schedule is not None and not callable(lr_schedule):
            raise TypeError(
                f"lr_schedule must be callable f(step) -> float, got {type(lr_schedule).__name__}"
            )
        if eval_every is not None and eval_fn is None and eval_data is None:
            raise ValueError("eval_every is set but there is nothing to evaluate: pass eval_fn or eval_data")
        if (checkpoint_every is not None or resume) and checkpoint_dir is None:
            raise ValueError("checkpoint_every / resume need a checkpoint_dir")
        if callable(train_data):
            self._get_batch, self._iterable = train_data, None
        elif isinstance(train_data, Iterable):
            self._get_batch, self._iterable = None, train_data
        else:
            raise TypeError(
                f"train_data must be a callable get_batch(i) or an iterable of batches, got {type(train_data).__name__}"
            )

        self.model = model
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.max_steps = max_steps
        self.grad_accum_steps = grad_accum_steps
        self.clip_grad_norm = clip_grad_norm
        self.check_grads = check_grads
        self.lr_schedule = lr_schedule
        self.eval_every = eval_every
        self.eval_fn = eval_fn
        self.eval_data = eval_data
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.checkpoint_every = checkpoint_every
        self.keep_last = keep_last
        self.resume = resume
        self.amp = amp
        self.seed = seed
        self.log_every = log_every
        self.progress = progress
        self._device_arg = device
        self.callbacks = callbacks
        self.parallel = parallel

        self.step = 0  # optimizer steps completed
        self.history: list[dict[str, float]] = []
        self.train_seconds = 0.0  # the training clock: steps only, evaluation and checkpoints excluded
        self.stop_reason: str | None = None  # set by a callback to end fit() early
        self.base_lrs = [group.setdefault("initial_lr", group["lr"]) for group in optimizer.param_groups]
        self._ready = False
        self._iterator: Iterator[Any] | None = None
        self._next_index = 0  # index of the batch self._iterator yields next

    # ------------------------------------------------------------------------------------------ setup

    def _setup(self) -> None:
        """Join torchrun's group, pick the device, wrap the model (DDP or FSDP2), seed. Runs once."""
        if self._ready:
            return
        info = distributed.setup() if distributed.env_world()[2] > 1 else None
        self.rank, self.world_size = (info.rank, info.world_size) if info else (0, 1)
        if self._device_arg is not None:
            self.device = torch.device(self._device_arg)
        elif info is not None and info.device.type == "cuda":
            self.device = info.device
        else:
            self.device = next(self.model.parameters()).device
        if self.amp == "fp16" and self.device.type != "cuda":
            warnings.warn("amp='fp16' is meant for GPUs; on CPU it is slow -- use amp='bf16'", stacklevel=3)
        self.model.to(self.device)  # keeps the Parameter objects, so the optimizer still points at them
        # fp16 has a tiny range (max 65504, smallest normal 6e-5): the scaler multiplies the loss by a large
        # factor so small gradients don't underflow to 0, and halves it whenever a gradient overflows.
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp == "fp16" else None
        self.ddp: DistributedDataParallel | None = None
        self.fsdp = self.world_size > 1 and self.parallel == "fsdp2"  # self.model itself is sharded
        if self.fsdp:
            # Each rank keeps its rows of every parameter; the weights are taken as they are on each rank
            # (no broadcast as in DDP): build the model from the same seed everywhere.
            sharded.shard_model(self.model, self.optimizer, self.device, self.world_size)
        elif self.world_size > 1:
            # DDP broadcasts rank 0's weights now, then all-reduces (averages) gradients during backward.
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids)
        seed_everything(self.seed + self.rank)  # ranks differ so dropout masks differ across replicas
        self._ready = True

    @property
    def is_main(self) -> bool:
        """True in the process that prints and writes checkpoints (rank 0; always true without torchrun)."""
        self._setup()
        return self.rank == 0

    # ------------------------------------------------------------------------------------------- data

    def _batch(self, index: int) -> Any:
        """Global micro-batch ``index`` -> this rank's slice, on the device."""
        if self._get_batch is not None:
            batch = self._get_batch(index)
        else:
            if self._iterator is None or index < self._next_index:
                self._iterator, self._next_index = iter(self._iterable), 0  # type: ignore[arg-type]
            while self._next_index < index:  # fast-forward after a resume
                self._next_from_iterable()
            batch = self._next_from_iterable()
        return to_device(shard_batch(batch, self.rank, self.world_size), self.device)

    def _next_from_iterable(self) -> Any:
        try:
            batch = next(self._iterator)  # type: ignore[arg-type]
        except StopIteration:  # one epoch done: start the next one
            self._iterator = iter(self._iterable)  # type: ignore[arg-type]
            try:
                batch = next(self._iterator)
            except StopIteration:
                raise ValueError(
                    "train_data yielded no batches after restarting; a one-shot generator can't be re-iterated: "
                    "pass a list, a DataLoader or a callable get_batch(i)"
                ) from None
        self._next_index += 1
        return batch

    # -------------------------------------------------------------------------------------- training

    def _train_step(self) -> dict[str, float]:
        """One optimizer step over ``grad_accum_steps`` micro-batches.

        The order decides what a failure leaves behind: forward and backward of every micro-batch, then
        the checks (the loss; every gradient with ``check_grads``), and only then the LR schedule and
        ``optimizer.step()``. A failed check raises ``FloatingPointError`` with the weights, the optimizer
        (state and learning rates) and the GradScaler exactly as after the last good step.

        Why the loss is checked after backward rather than before it: reading the loss waits for the
        device, and once per step (the history row reads it anyway) costs less than once per micro-batch;
        and under torchrun every process must run backward, whose gradient all-reduce would wait forever
        for a process that raised early. Backward of a NaN loss only fills ``.grad`` with NaN -- left there
        for inspection, cleared by the next step's ``zero_grad``.
        """
        model = self.ddp or self.model
        k = self.grad_accum_steps
        self.optimizer.zero_grad(set_to_none=True)
        micro_losses = []
        for micro in range(k):
            batch = self._batch(self.step * k + micro)
            # DDP all-reduces (FSDP2 reduce-scatters) gradients in every backward; skip that on all but
            # the last micro-batch, so that the gradients are summed locally and exchanged once.
            last = micro == k - 1
            sync = nullcontext() if self.ddp is None or last else self.ddp.no_sync()
            if self.fsdp:
                self.model.set_requires_gradient_sync(last)  # type: ignore[operator]
            with sync:
                with autocast_context(self.device.type, self.amp):
                    loss = compute_loss(model, batch, self.loss_fn)
                # Each micro-batch loss is a mean over its b rows, and backward() *adds* gradients, so
                # dividing by k makes the sum the mean over all k*b rows: the gradient of one big batch.
                scaled = loss / k
                (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            micro_losses.append(loss.detach().double())
        # Each micro-batch's loss averaged over the processes (one all-reduce), so that every process
        # sees the same numbers and takes the same decision below.
        losses = distributed.mean_over_ranks(torch.stack(micro_losses)).tolist()
        if not all(math.isfinite(value) for value in losses):
            raise self._non_finite_loss(losses)

        row: dict[str, float] = {"step": self.step + 1, "loss": sum(losses) / k}  # the global batch's mean
        # fp16's GradScaler expects some steps to overflow: it skips them and lowers its scale. Those
        # gradients are not errors, so they are left to it; the loss above is checked all the same,
        # because it comes from the forward pass, which the scale does not touch.
        scaling = self.scaler is not None and self.scaler.is_enabled()
        if self.check_grads and not scaling:
            self._check_gradients(row["loss"])
        if self.scaler is not None:  # clip (and log) the true gradients, not the scaled ones
            # An OptimizerChain passes as one optimizer (the scaler only needs param_groups and step):
            # an overflow in any member's gradients skips the whole chain's step, never half of it.
            self.scaler.unscale_(self.optimizer)  # type: ignore[arg-type]
        if self.clip_grad_norm is not None:  # one global norm, over every optimizer's parameters
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
            row["grad_norm"] = float(sharded.full_tensor(norm))  # FSDP2: a DTensor, the same on every rank
            # clipping by a NaN norm would make NaN weights
            if not math.isfinite(row["grad_norm"]) and not scaling:
                raise self._non_finite(
                    f"the gradient norm is {row['grad_norm']} (the loss was finite: {row['loss']:.4g})",
                    [
                        *self._gradient_causes(),
                        "pass check_grads=True to name the first non-finite parameter",
                    ],
                )
        if self.lr_schedule is not None:  # set only now, so that a failed check leaves the LRs as they were
            multiplier = float(self.lr_schedule(self.step))
            for group, base_lr in zip(self.optimizer.param_groups, self.base_lrs):
                group["lr"] = base_lr * multiplier
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # type: ignore[arg-type]  # skipped if a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.step += 1
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        return row

    # ------------------------------------------------------------------------- non-finite values

    def _batches_of_this_step(self) -> str:
        """``"train_data batch 6"``, or ``"train_data batches 6 to 7"`` with gradient accumulation."""
        first, k = self.step * self.grad_accum_steps, self.grad_accum_steps
        return f"train_data batch {first}" if k == 1 else f"train_data batches {first} to {first + k - 1}"

    def _non_finite(self, what: str, causes: list[str], batch: str | None = None) -> FloatingPointError:
        """The error for a non-finite value found in step ``self.step + 1`` before its update."""
        return FloatingPointError(
            f"{what} at step {self.step + 1} ({batch or self._batches_of_this_step()}). Nothing was "
            f"updated: the weights, the optimizer state and the learning rates are those after step "
            f"{self.step}; this step's gradients are left in .grad for inspection. Likely causes: "
            + "; ".join(causes)
            + "."
        )

    def _non_finite_loss(self, losses: list[float]) -> FloatingPointError:
        """The error for a non-finite loss; ``losses`` holds each micro-batch's loss of this step."""
        k = self.grad_accum_steps
        micro = next(i for i, value in enumerate(losses) if not math.isfinite(value))
        index = self.step * k + micro
        batch = f"micro-batch {micro + 1} of {k}: train_data batch {index}" if k > 1 else None
        where = f" in at least one of the {self.world_size} processes" if self.world_size > 1 else ""
        causes = []
        bad_weight = _first_non_finite(self.model.named_parameters())
        if bad_weight is not None:
            name, weight = bad_weight
            causes.append(
                f"weights non-finite before this step (parameter {name!r}: {_count_non_finite(weight)})"
            )
        causes.append(
            f"bad data: NaN or inf in the inputs or targets of train_data batch {index}, or a target out of range"
        )
        causes.append(_AMP_CAUSES.get(self.amp, ""))
        causes.append(
            "weights blown up by a learning rate too high (lower it, warm it up, or set clip_grad_norm)"
        )
        causes.append("the model or loss_fn computing log(0), 0/0 or inf - inf on this input")
        return self._non_finite(f"the loss is {losses[micro]}{where}", [c for c in causes if c], batch)

    def _gradient_causes(self) -> list[str]:
        return [
            "an operation whose derivative is infinite at this input (sqrt or log at 0, the norm of a zero "
            "vector, a fractional power of 0): add a small epsilon there",
            "gradients that explode before they overflow: lower the learning rate or set clip_grad_norm",
            f"bad data in {self._batches_of_this_step()}",
        ]

    def _check_gradients(self, loss: float) -> None:
        """Raise if any gradient holds inf or NaN, naming the first such parameter (``check_grads=True``)."""
        bad = _first_non_finite((name, p.grad) for name, p in self.model.named_parameters())
        if bad is not None:
            name, grad = bad
            raise self._non_finite(
                f"the gradient of parameter {name!r} has {_count_non_finite(grad)} (the loss was finite: {loss:.4g})",
                self._gradient_causes(),
            )

    def _due(self, every: int | None) -> bool:
        return every is not None and (self.step % every == 0 or self.step == self.max_steps)

    def _callback(self, hook: str, *args: Any) -> None:
        """Call ``hook(self, *args)`` on every callback that has it, in order."""
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self, *args)

    def evaluate(self) -> dict[str, float]:
        """Run ``eval_fn`` and/or score ``eval_data`` now; returns the metrics (not added to history)."""
        self._setup()
        results: dict[str, float] = {}
        if self.eval_data is not None:
            results["eval_loss"] = evaluate(
                self.model, self.eval_data, self.loss_fn, device=self.device, amp=self.amp
            )
        if self.eval_fn is not None:
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad(), autocast_context(self.device.type, self.amp):
                    out = self.eval_fn(self.model)
            finally:
                self.model.train(was_training)
            if isinstance(out, dict):
                results.update({k: float(v) for k, v in out.items()})
            else:
                results["eval"] = float(out)
        return results

    def fit(self) -> list[dict[str, float]]:
        """Train up to ``max_steps`` or until a callback stops the run (resuming first if asked).

        Returns the history. Why a run stopped early is in ``self.stop_reason`` (None: it reached ``max_steps``).
        """
        self._setup()
        if self.resume and self.step == 0 and (path := latest_checkpoint(self.checkpoint_dir)) is not None:
            self.load_checkpoint(path)
        bar = tqdm(
            total=self.max_steps,
            initial=self.step,
            desc="train",
            disable=not (self.progress and self.rank == 0),
        )
        has_eval = self.eval_fn is not None or self.eval_data is not None
        self.stop_reason = None
        self.model.train()
        try:
            while self.stop_reason is None and (self.max_steps is None or self.step < self.max_steps):
                started = time.perf_counter()
                self._callback("on_step_begin")
                row = self._train_step()  # ends by reading the loss: the device has finished the step
                self.train_seconds += time.perf_counter() - started
                row["time_s"] = self.train_seconds
                self._callback("on_step_end", row)  # may set stop_reason (e.g. a time limit)
                last = self.stop_reason is not None or self.step == self.max_steps
                # evaluate every eval_every steps, and always after the last one
                evaluated = has_eval and (self._due(self.eval_every) or last)
                if evaluated:
                    row.update(self.evaluate())
                    self._callback("on_eval", row)  # may set stop_reason (e.g. a target accuracy)
                    last = last or self.stop_reason is not None
                if evaluated or last or self._due(self.log_every):
                    self.history.append(row)
                    bar.set_postfix(
                        {k: f"{v:.4g}" for k, v in row.items() if k not in ("step", "time_s")}, refresh=False
                    )
                if self.checkpoint_dir is not None and (self._due(self.checkpoint_every) or last):
                    self.save_checkpoint()
                bar.update(1)
        finally:
            bar.close()
        return self.history

    # ----------------------------------------------------------------------------------- checkpoints

    def save_checkpoint(self) -> Path | None:
        """Write a checkpoint of the current step (every rank must call). Returns its path (on rank 0; FSDP2: all).

        DDP (and one process): rank 0 writes safetensors + JSON. FSDP2: every rank writes its shards
        (:func:`~bestiary.train.sharded.save_sharded_checkpoint`), rank 0 the JSON state.
        """
        self._setup()
        if self.checkpoint_dir is None:
            raise ValueError("save_checkpoint needs a checkpoint_dir")
        tensors, meta = rng_state()
        per_rank = [(tensors, meta)]
        if self.world_size > 1:  # each rank's RNG differs (dropout): collect them all on rank 0
            per_rank = [None] * self.world_size  # type: ignore[list-item]
            # all_gather_object pickles, but only in memory between our own processes -- never a file.
            dist.all_gather_object(per_rank, ({k: v.cpu() for k, v in tensors.items()}, meta))
        path = None
        extra = {
            "history": self.history,
            "train_seconds": self.train_seconds,
            "base_lrs": self.base_lrs,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": {f"rank{r}": m for r, (_, m) in enumerate(per_rank)},
            "world_size": self.world_size,
        }
        rng_tensors = {f"rank{r}.{k}": v for r, (t, _) in enumerate(per_rank) for k, v in t.items()}
        if self.fsdp:  # every rank writes its shards; rank 0 the JSON and the RNG states, then publishes
            return sharded.save_sharded_checkpoint(
                self.checkpoint_dir, self.step, self.model, self.optimizer,
                extra=extra, tensors=rng_tensors, keep_last=self.keep_last,
            )  # fmt: skip
        if self.rank == 0:
            path = save_checkpoint(
                self.checkpoint_dir, self.step, self.model, self.optimizer,
                extra=extra, tensors=rng_tensors, keep_last=self.keep_last,
            )  # fmt: skip
        if self.world_size > 1:
            dist.barrier()  # nobody runs ahead (or resumes) before the checkpoint is on disk
        return path

    def load_checkpoint(self, path: str | os.PathLike) -> None:
        """Restore model, optimizer, step, history and RNG states from ``path`` (a checkpoint or its root).

        All or nothing: the checkpoint is read and checked in full -- the model's and the optimizer's
        tensors by :func:`~bestiary.train.checkpoint.stage_checkpoint`, the Trainer's own state by
        :meth:`_check_trainer_state` -- before anything is changed. A failure raises ``FileFormatError``
        (a truncated or corrupted file) or ``CheckpointMismatchError`` (another model or optimizer) and
        leaves the Trainer, its model and its optimizer exactly as they were.
        """
        self._setup()
        staged = stage_checkpoint(path, self.model, self.optimizer)
        restored = self._check_trainer_state(staged)
        # Everything is checked: from here on only copies and assignments.
        staged.apply()
        self.step, self.history, self.base_lrs = staged.step, restored.history, restored.base_lrs
        self.train_seconds = restored.train_seconds
        if restored.scaler is not None:
            self.scaler.load_state_dict(restored.scaler)  # type: ignore[union-attr]
        if restored.rng is not None:
            set_rng_state(*restored.rng)
        else:
            warnings.warn(
                f"checkpoint was written by {staged.extra.get('world_size')} processes, this run has "
                f"{self.world_size}: RNG states can't be matched up, so the run continues correctly but not "
                "bit-identically",
                stacklevel=2,
            )
            seed_everything(self.seed + self.rank + 1_000_003 * self.step)
        self._iterator = None  # an iterable restarts and fast-forwards to the resumed position

    def _check_trainer_state(self, staged: StagedCheckpoint) -> _TrainerState:
        """The Trainer's part of a checkpoint (history, peak LRs, clock, GradScaler, RNG), checked; changes nothing."""
        extra, file = staged.extra, staged.path / "state.json"

        def malformed(problem: str) -> FileFormatError:
            return FileFormatError(
                file, "a Trainer checkpoint's state", problem, fallback_advice(staged.path)
            )

        def is_number(value: Any) -> bool:
            return isinstance(value, (int, float)) and not isinstance(value, bool)

        history = extra.get("history")
        if not (isinstance(history, list) and all(isinstance(row, dict) for row in history)):
            raise malformed("its 'history' is not a list of rows")
        base_lrs = extra.get("base_lrs")
        if not (isinstance(base_lrs, list) and all(is_number(lr) for lr in base_lrs)):
            raise malformed("its 'base_lrs' is not a list of learning rates")
        if len(base_lrs) != len(self.optimizer.param_groups):
            raise CheckpointMismatchError(
                f"{file}: 'base_lrs' holds {len(base_lrs)} peak learning rates (one per param group), but this "
                f"optimizer has {len(self.optimizer.param_groups)} param groups"
            )
        train_seconds = extra.get("train_seconds", history[-1].get("time_s", 0.0) if history else 0.0)
        if not is_number(train_seconds):
            raise malformed(f"its 'train_seconds' is {train_seconds!r}, not a number")

        scaler = None
        if self.scaler is not None and self.scaler.is_enabled() and extra.get("scaler"):
            scaler, needed = extra["scaler"], sorted(self.scaler.state_dict())
            if not (isinstance(scaler, dict) and all(is_number(scaler.get(key)) for key in needed)):
                raise malformed(f"its GradScaler state {scaler!r:.120} does not have numbers for {needed}")

        rng = None
        key, per_rank = f"rank{self.rank}", extra.get("rng")
        if extra.get("world_size") == self.world_size:  # otherwise load_checkpoint reseeds (and warns)
            if not (isinstance(per_rank, dict) and key in per_rank):
                raise malformed(f"its RNG state for {key} is missing")
            prefix = key + "."
            tensors = {k[len(prefix) :]: v for k, v in staged.tensors.items() if k.startswith(prefix)}
            try:
                check_rng_state(tensors, per_rank[key])
            except ValueError as err:
                raise malformed(f"its RNG state for {key} is unusable: {err}") from err
            rng = (tensors, per_rank[key])
        return _TrainerState(history, base_lrs, float(train_seconds), scaler, rng)
