"""Optimizers: AdamW the way transformer training runs configure it, and Muon for hidden matrices.

AdamW ("Decoupled Weight Decay Regularization", Loshchilov & Hutter, 2017, arXiv:1711.05101)
with two conventions from GPT-2/nanoGPT-style training:

* weight decay only on matrices (2-D and up: linear and embedding weights, conv kernels); biases and
  norm scales are 1-D and are left alone — decaying a LayerNorm scale towards 0 only fights the norm;
* the *fused* AdamW kernel where PyTorch has one (CPU and CUDA): one kernel updates every tensor,
  instead of a handful of element-wise passes per tensor. The update is the same math; on a small
  model on a CPU it is several times faster than the default implementation (see
  `benchmarks/charlm_cpu.py`).

    opt = adamw(model, lr=1e-3, weight_decay=0.1)

Muon ("MomentUm Orthogonalized by Newton-Schulz", Keller Jordan et al., 2024,
kellerjordan.github.io/posts/muon; "Muon is Scalable for LLM Training", Liu et al., 2025,
arXiv:2502.16982) takes SGD's Nesterov momentum for a weight matrix and replaces it with the nearest
*semi-orthogonal* matrix before stepping: every direction the momentum points along gets the same step
size, instead of a few dominant directions taking almost all of it. Orthogonalising exactly needs an
SVD; a few Newton-Schulz iterations (matmuls only) get close enough. It is meant for the hidden
layers' matrices (here also conv kernels, flattened to out x (in * kh * kw)); norms, biases,
embeddings and the classifier head stay with AdamW -- :func:`muon_with_adamw` makes that split.

    opt = muon_with_adamw(model, lr=0.05, adamw_lr=5e-3, weight_decay=5e-4)
"""

from __future__ import annotations

import math
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


# The quintic's coefficients from Keller Jordan's Muon (also torch.optim.Muon's defaults): chosen to make
# the slope at 0 as steep as possible, so that 5 steps push every singular value into roughly [0.7, 1.2]
# instead of converging exactly to 1 -- which would need many more steps and trains no better.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz_orthogonalize(
    matrix: torch.Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
) -> torch.Tensor:
    """Approximately U V^T for ``matrix`` = U S V^T (2-D), by ``steps`` quintic Newton-Schulz iterations.

    X <- a X + b (X X^T) X + c (X X^T)^2 X acts on each singular value s as s <- a s + b s^3 + c s^5 and
    leaves the singular vectors alone. Dividing by the Frobenius norm first puts every s in [0, 1], where
    the iteration pushes them towards 1. Runs in the matrix's dtype.
    """
    if matrix.dim() != 2:
        raise ValueError(f"expected a 2-D matrix, got shape {tuple(matrix.shape)}")
    a, b, c = coefficients
    wide = matrix.size(0) <= matrix.size(1)
    x = matrix if wide else matrix.T  # (rows <= cols): the Gram matrix x x^T is the small one
    x = x / x.norm().clamp_min(eps)
    for _ in range(steps):
        gram = x @ x.T  # (rows, rows)
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)  # b G + c G^2, (rows, rows)
        x = torch.addmm(x, poly, x, beta=a)  # a x + (b G + c G^2) x
    return x if wide else x.T


class Muon(torch.optim.Optimizer):
    """Muon for weight matrices and conv kernels (any parameter with dim >= 2).

    Per parameter W with gradient G: momentum buffer B <- mu B + (1 - mu) G; update U = (1 - mu) G + mu B
    (Nesterov) or B; O = newton_schulz_orthogonalize(U reshaped to (out, -1)); then
    W <- W (1 - lr * weight_decay) - lr * sqrt(max(1, out / in)) * O. The sqrt factor (Keller Jordan's
    original scaling) keeps tall matrices' per-element steps from shrinking.

    ``ns_dtype``: dtype of the Newton-Schulz matmuls; None (default) keeps the parameter's dtype.
    ``torch.optim.Muon`` always uses bfloat16, which is fast on GPUs but slower than float32 on CPUs
    without native bfloat16 support. With ``ns_dtype=torch.bfloat16`` the math is ``torch.optim.Muon``'s
    (tested).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 0.02,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        ns_steps: int = 5,
        ns_dtype: torch.dtype | None = None,
    ) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        defaults = dict(
            lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, ns_steps=ns_steps,
            ns_dtype=ns_dtype,
        )  # fmt: skip
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.dim() < 2:
                    raise ValueError(
                        f"Muon is for matrices and conv kernels (dim >= 2), got a parameter of shape "
                        f"{tuple(p.shape)}: give biases and norm scales to AdamW (see muon_with_adamw)"
                    )

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mu, decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad)
                buffer = state["momentum_buffer"]
                buffer.lerp_(grad, 1 - mu)  # B <- mu B + (1 - mu) G
                update = grad.lerp(buffer, mu) if group["nesterov"] else buffer
                matrix = update.reshape(len(update), -1)  # (out, in * kh * kw) for a conv kernel
                ortho = newton_schulz_orthogonalize(
                    matrix.to(group["ns_dtype"] or matrix.dtype), group["ns_steps"]
                )
                rows, cols = matrix.shape
                p.mul_(1 - lr * decay)
                p.add_(ortho.view(p.shape).to(p.dtype), alpha=-lr * math.sqrt(max(1.0, rows / cols)))
        return loss


class OptimizerChain:
    """Several optimizers stepped as one (e.g. Muon for the kernels, AdamW for the rest).

    ``param_groups`` lists every optimizer's groups, so an LR schedule that sets ``group["lr"]`` works
    unchanged; each group keeps its own peak in ``group["initial_lr"]``.
    """

    def __init__(self, *optimizers: torch.optim.Optimizer) -> None:
        self.optimizers = list(optimizers)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @property
    def param_groups(self) -> list[dict]:
        return [g for opt in self.optimizers for g in opt.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for opt in self.optimizers:
            opt.step()

    def state_dict(self) -> dict:
        return {"optimizers": [opt.state_dict() for opt in self.optimizers]}

    def load_state_dict(self, state: dict) -> None:
        for opt, s in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(s)


def muon_with_adamw(
    model: nn.Module,
    lr: float = 0.05,
    adamw_lr: float = 5e-3,
    weight_decay: float = 5e-4,
    momentum: float = 0.95,
    muon_for: tuple[type[nn.Module], ...] = (nn.Conv1d, nn.Conv2d, nn.Conv3d),
) -> OptimizerChain:
    """Muon for the weights of ``muon_for`` modules (conv kernels by default), AdamW for all else.

    Why not every matrix: the classifier head's rows are the class scores, not a hidden layer, and
    orthogonalising a large Linear's update (e.g. 3136 x 128) costs more than the step itself on a CPU;
    on the Fashion-MNIST speed run Muon on the head too trained no better. Pass ``muon_for=(nn.Linear,
    nn.Conv2d)`` for transformers' hidden Linears -- but then also leave the output head out yourself.
    """
    trainable = {id(p): p for p in model.parameters() if p.requires_grad}
    kernels = [m.weight for m in model.modules() if isinstance(m, muon_for) and id(m.weight) in trainable]
    if not kernels:
        raise ValueError(f"no trainable weights of {[t.__name__ for t in muon_for]} in the model for Muon")
    kernel_ids = {id(p) for p in kernels}
    rest = [p for p in trainable.values() if id(p) not in kernel_ids]
    optimizers: list[torch.optim.Optimizer] = [Muon(kernels, lr=lr, momentum=momentum, weight_decay=0.0)]
    if rest:
        optimizers.append(adamw(rest, lr=adamw_lr, weight_decay=weight_decay, betas=(0.9, 0.999)))
    return OptimizerChain(*optimizers)
