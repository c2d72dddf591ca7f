"""How a batch becomes a loss, plus ``evaluate`` and ``accuracy``.

One rule, shared by training and evaluation:

- with a ``loss_fn``: the batch is ``(inputs..., target)``; ``loss = loss_fn(model(*inputs), target)``;
- without one, the model computes its own loss: ``model(*batch)`` (or ``model(**batch)`` for a dict,
  ``model(batch)`` for a tensor) returns a scalar tensor, a dict with ``"loss"`` or an object with a
  ``.loss`` attribute (the Hugging Face convention).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from bestiary.train.batches import batch_size_of, to_device

LossFn = Callable[[Any, torch.Tensor], torch.Tensor]


def call_model(model: nn.Module, inputs: Any) -> Any:
    """``model(*inputs)`` for a tuple/list, ``model(**inputs)`` for a dict, ``model(inputs)`` otherwise."""
    if isinstance(inputs, Mapping):
        return model(**inputs)
    if isinstance(inputs, (list, tuple)):
        return model(*inputs)
    return model(inputs)


def loss_from_output(output: Any) -> torch.Tensor:
    """The loss a model returned: a scalar tensor, ``output["loss"]`` or ``output.loss``."""
    loss = output
    if isinstance(output, Mapping) and "loss" in output:
        loss = output["loss"]
    elif not isinstance(output, torch.Tensor) and getattr(output, "loss", None) is not None:
        loss = output.loss
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise TypeError(
            f"without a loss_fn the model must return a scalar loss (a 0-dim tensor, a dict with 'loss' or "
            f"an object with .loss); it returned {shape}. Pass loss_fn=... to compute the loss from outputs."
        )
    return loss


def split_batch(batch: Any) -> tuple[Any, torch.Tensor]:
    """``(inputs..., target)`` -> ``(inputs, target)``, the form a ``loss_fn`` needs."""
    if not isinstance(batch, (list, tuple)) or len(batch) < 2:
        raise TypeError(
            "with a loss_fn (or metric) each batch must be a tuple/list (inputs..., target); got "
            f"{type(batch).__name__}{'' if not isinstance(batch, (list, tuple)) else f' of length {len(batch)}'}"
        )
    return tuple(batch[:-1]), batch[-1]


def compute_loss(model: nn.Module, batch: Any, loss_fn: LossFn | None) -> torch.Tensor:
    """The training loss of one batch (see the module docstring for the rule)."""
    if loss_fn is None:
        return loss_from_output(call_model(model, batch))
    inputs, target = split_batch(batch)
    loss = loss_fn(call_model(model, inputs), target)
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        raise TypeError(f"loss_fn must return a scalar tensor, got {loss!r:.80}")
    return loss


AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_context(device_type: str, amp: str | None) -> Any:
    """``torch.autocast`` for ``amp`` in {"bf16", "fp16"}; a no-op context for ``amp=None``."""
    if amp is None:
        return nullcontext()
    if amp not in AMP_DTYPES:
        raise ValueError(f"amp must be None, 'bf16' or 'fp16', got {amp!r}")
    return torch.autocast(device_type, dtype=AMP_DTYPES[amp])


def accuracy(outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Fraction of correct argmax predictions. ``outputs``: (..., C) scores; ``target``: (...) class ids."""
    if outputs.shape[:-1] != target.shape:
        raise ValueError(
            f"accuracy expects outputs (..., C) and target (...) with matching leading dims, "
            f"got {tuple(outputs.shape)} and {tuple(target.shape)}"
        )
    return (outputs.argmax(dim=-1) == target).float().mean()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    batches: Iterable[Any],
    metric: LossFn | None = None,
    *,
    device: torch.device | str | None = None,
    amp: str | None = None,
) -> float:
    """Mean of ``metric(model(*inputs), target)`` over ``batches``, weighted by batch size.

    ``metric=None`` averages the loss the model returns itself. The model is put in eval mode (no
    dropout) and restored to its previous mode afterwards. ``amp="bf16"`` evaluates under bf16 autocast.
    """
    if device is None:  # where the model lives (CPU for a parameter-free model)
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    was_training = model.training
    model.eval()
    autocast = autocast_context(device.type, amp)
    total, count = 0.0, 0
    try:
        for batch in batches:
            batch = to_device(batch, device)
            with autocast:
                value = compute_loss(model, batch, metric)
            n = batch_size_of(batch)
            total += float(value) * n
            count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate got no batches")
    return total / count
