"""Optimizers and learning-rate schedules in NumPy, with exactly torch.optim's update rules.

An optimizer here works on ANY list of objects that have a ``.data`` and a ``.grad`` NumPy array:
`Tensor` parameters, or plain arrays wrapped in the tiny `Param` class below.

    w = Param(np.zeros(3))
    opt = Adam([w], lr=1e-2)
    for step in range(100):
        w.grad = my_gradient(w.data)
        opt.step()

Parameters whose ``.grad`` is None are skipped (torch does the same). ``zero_grad()`` sets grads to
None (torch's default ``set_to_none=True``). ``opt.lr`` may be changed between steps — that is all a
learning-rate schedule does (see `step_lr`, `cosine_lr`, `warmup_cosine_lr`).

Update rules (g = gradient, p = parameter, t = step counter starting at 1):
- SGD: g += wd p; with momentum: b = mu b + (1 - dampening) g (b = g at the first step);
  nesterov: g = g + mu b, else g = b; p -= lr g.
- RMSprop: g += wd p; s = alpha s + (1 - alpha) g^2; [centered: m = alpha m + (1 - alpha) g,
  s~ = s - m^2]; d = sqrt(s~) + eps; [momentum: b = mu b + g / d, p -= lr b] else p -= lr g / d.
- Adam: g += wd p (L2 regularisation, coupled to the adaptive scaling);
  m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
  p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)      # eps OUTSIDE the bias-corrected sqrt
- AdamW: p *= 1 - lr wd (decoupled weight decay), then the Adam step without the L2 term.

References: Polyak (1964) momentum; Sutskever et al. (2013) Nesterov momentum for deep nets;
Tieleman & Hinton (2012) RMSprop; Kingma & Ba, "Adam" (2014, arXiv:1412.6980); Loshchilov & Hutter,
"Decoupled weight decay regularization" (2017, arXiv:1711.05101) and "SGDR" (2016, arXiv:1608.03983).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np


class HasDataAndGrad(Protocol):
    data: np.ndarray
    grad: np.ndarray | None


class Param:
    """A NumPy array with a gradient slot — the smallest thing an optimizer can update."""

    def __init__(self, data: Any, name: str = ""):
        self.data = np.array(data, dtype=np.float64)  # a copy: the optimizer updates it in place
        self.grad: np.ndarray | None = None
        self.name = name

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        return f"Param({self.name or 'shape=' + str(self.data.shape)})"


class Optimizer:
    """Base class: keeps the parameter list and per-parameter state (keyed by position)."""

    def __init__(self, params: Iterable[HasDataAndGrad], lr: float):
        self.params = list(params)
        if not self.params:
            raise ValueError("optimizer got an empty parameter list")
        for p in self.params:
            if not hasattr(p, "data") or not hasattr(p, "grad"):
                raise TypeError(f"optimizer parameters need .data and .grad, got {type(p).__name__}")
        if lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {lr}")
        self.lr = lr
        self.state: list[dict[str, Any]] = [{} for _ in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad = np.zeros_like(p.grad)

    def _grads(self) -> Iterable[tuple[HasDataAndGrad, np.ndarray, dict[str, Any]]]:
        for p, state in zip(self.params, self.state):
            if p.grad is None:
                continue
            g = np.asarray(p.grad, dtype=np.float64)
            if g.shape != p.data.shape:
                raise ValueError(f"gradient shape {g.shape} does not match parameter shape {p.data.shape}")
            yield p, g, state

    def step(self) -> None:
        raise NotImplementedError

    @staticmethod
    def _update(p: HasDataAndGrad, new: np.ndarray) -> None:
        # Write in place so that anyone holding a reference to p.data sees the update.
        p.data[...] = new


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum and L2 weight decay."""

    def __init__(
        self,
        params: Iterable[HasDataAndGrad],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov momentum requires momentum > 0 and dampening = 0 (as in torch)")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = (
            momentum,
            dampening,
            weight_decay,
            nesterov,
        )

    def step(self) -> None:
        for p, g, state in self._grads():
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                if "momentum_buffer" not in state:
                    buf = g.copy()  # first step: the buffer starts at the gradient, no dampening
                else:
                    buf = self.momentum * state["momentum_buffer"] + (1 - self.dampening) * g
                state["momentum_buffer"] = buf
                # Nesterov: step along the gradient PLUS the look-ahead momentum.
                g = g + self.momentum * buf if self.nesterov else buf
            self._update(p, p.data - self.lr * g)


class RMSprop(Optimizer):
    """Divide the step by a running root-mean-square of recent gradients (torch's RMSprop)."""

    def __init__(
        self,
        params: Iterable[HasDataAndGrad],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(params, lr)
        self.alpha, self.eps, self.weight_decay = alpha, eps, weight_decay
        self.momentum, self.centered = momentum, centered

    def step(self) -> None:
        for p, g, state in self._grads():
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            sq = self.alpha * state.get("square_avg", 0.0) + (1 - self.alpha) * g * g
            state["square_avg"] = sq
            if self.centered:
                # Subtract the squared mean gradient: a running VARIANCE instead of a 2nd moment.
                mean = self.alpha * state.get("grad_avg", 0.0) + (1 - self.alpha) * g
                state["grad_avg"] = mean
                denom = np.sqrt(sq - mean * mean) + self.eps
            else:
                denom = np.sqrt(sq) + self.eps
            if self.momentum:
                buf = self.momentum * state.get("momentum_buffer", 0.0) + g / denom
                state["momentum_buffer"] = buf
                self._update(p, p.data - self.lr * buf)
            else:
                self._update(p, p.data - self.lr * g / denom)


class Adam(Optimizer):
    """Adam: momentum (1st moment) / RMS (2nd moment), both bias-corrected; L2 weight decay."""

    decoupled = False

    def __init__(
        self,
        params: Iterable[HasDataAndGrad],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr)
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        self.betas, self.eps, self.weight_decay, self.amsgrad = betas, eps, weight_decay, amsgrad

    def step(self) -> None:
        b1, b2 = self.betas
        for p, g, state in self._grads():
            if self.decoupled:
                # AdamW: shrink the weights directly, independent of the adaptive scaling.
                self._update(p, p.data * (1 - self.lr * self.weight_decay))
            elif self.weight_decay:
                g = g + self.weight_decay * p.data
            t = state.get("step", 0) + 1
            state["step"] = t
            m = b1 * state.get("exp_avg", 0.0) + (1 - b1) * g
            v = b2 * state.get("exp_avg_sq", 0.0) + (1 - b2) * g * g
            state["exp_avg"], state["exp_avg_sq"] = m, v
            if self.amsgrad:
                v = np.maximum(state.get("max_exp_avg_sq", 0.0), v)  # never let the denominator shrink
                state["max_exp_avg_sq"] = v
            # The moments start at 0, so early averages are biased towards 0; dividing by
            # (1 - beta^t) undoes that. torch applies eps AFTER correcting sqrt(v):
            bias_correction1 = 1 - b1**t
            bias_correction2 = 1 - b2**t
            denom = np.sqrt(v) / math.sqrt(bias_correction2) + self.eps
            self._update(p, p.data - (self.lr / bias_correction1) * m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); torch's default weight_decay=0.01."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[HasDataAndGrad],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)


# -- learning-rate schedules (pure functions of the step number) ----------------------------------
def step_lr(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Multiply by `gamma` every `step_size` steps (torch.optim.lr_scheduler.StepLR)."""
    if step_size < 1:
        raise ValueError(f"step_size must be >= 1, got {step_size}")
    return base_lr * gamma ** (step // step_size)


def cosine_lr(step: int, base_lr: float, total_steps: int, min_lr: float = 0.0) -> float:
    """Half a cosine from base_lr (step 0) down to min_lr (step total_steps), then flat.

    Same values as torch's CosineAnnealingLR(T_max=total_steps, eta_min=min_lr) for 0 <= step <= T_max.
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")
    progress = min(step, total_steps) / total_steps
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine_lr(
    step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> float:
    """Linear warm-up from 0 to base_lr over `warmup_steps`, then cosine decay to `min_lr` at `total_steps`.

    With min_lr=0 this is `transformers.get_cosine_schedule_with_warmup` (the usual LM schedule).
    Warm-up avoids huge early Adam steps while its second-moment estimate is still noisy.
    """
    if not 0 <= warmup_steps <= total_steps:
        raise ValueError(f"need 0 <= warmup_steps <= total_steps, got {warmup_steps} and {total_steps}")
    if step < warmup_steps:
        return base_lr * step / max(1, warmup_steps)
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(step - warmup_steps, decay_steps) / decay_steps
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "Optimizer",
    "Param",
    "RMSprop",
    "cosine_lr",
    "step_lr",
    "warmup_cosine_lr",
]
