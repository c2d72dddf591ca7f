"""Optimizer set-up: AdamW the way transformer training runs configure it.

AdamW ("Decoupled Weight Decay Regularization", Loshchilov & Hutter, 2017, arXiv:1711.05101)
with two conventions from GPT-2/nanoGPT-style training:

* weight decay only on matrices (2-D and up: linear and embedding weights, conv kernels); biases and
  norm scales are 1-D and are left alone — decaying a LayerNorm scale towards 0 only fights the norm;
* the *fused* AdamW kernel where PyTorch has one (CPU and CUDA): one kernel updates every tensor,
  instead of a handful of element-wise passes per tensor. The update is the same math; on a small
  model on a CPU it is several times faster than the default implementation (see
  `benchmarks/charlm_cpu.py`).

    opt = adamw(model, lr=1e-3, weight_decay=0.1)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def decay_groups(params: nn.Module | Iterable[torch.Tensor], weight_decay: float) -> list[dict[str, object]]:
    """Split trainable parameters into a decayed group (dim >= 2) and an undecayed one (dim < 2)."""
    tensors = params.parameters() if isinstance(params, nn.Module) else params
    trainable = [p for p in tensors if p.requires_grad]
    return [
        {"params": [p for p in trainable if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in trainable if p.dim() < 2], "weight_decay": 0.0},
    ]


def _fused_supported(groups: list[dict[str, object]]) -> bool:
    tensors = [p for g in groups for p in g["params"]]  # type: ignore[attr-defined]
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)


def adamw(
    params: nn.Module | Iterable[torch.Tensor],
    lr: float = 1e-3,
    weight_decay: float = 0.1,
    betas: tuple[float, float] = (0.9, 0.95),
    eps: float = 1e-8,
    fused: bool | None = None,
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only; `fused=None` uses the fused kernel when it can."""
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    groups = decay_groups(params, weight_decay)
    if not any(g["params"] for g in groups):
        raise ValueError("no trainable parameters (all have requires_grad=False)")
    if fused is None:
        fused = _fused_supported(groups)
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=fused)
