"""Fixed-step and adaptive solvers for dy/dt = f(y), over one interval of length dt.

A continuous-time recurrent cell (an LTC neuron, a neural ODE) says how its state *changes*; a
solver turns that into the next state. With n steps of size h = dt / n:

    euler   y <- y + h f(y)                                  error O(h): halving h halves it
    rk4     four slopes per step, weighted 1/6, 2/6, 2/6, 1/6 error O(h^4): halving h divides it by 16
    dopri5  Dormand-Prince 5(4) with adaptive steps, via torchdiffeq (an optional dependency)

f must be autonomous over the interval (the cell holds its input constant while it integrates).
`dt` may be a float or a tensor that broadcasts against y (a per-example elapsed time, (B, 1)).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Field = Callable[[torch.Tensor], torch.Tensor]
FIXED_STEP_SOLVERS = ("euler", "rk4")


def euler_step(f: Field, y: torch.Tensor, h: torch.Tensor | float) -> torch.Tensor:
    return y + h * f(y)


def rk4_step(f: Field, y: torch.Tensor, h: torch.Tensor | float) -> torch.Tensor:
    """The classical Runge-Kutta step: slopes at the start, twice at the midpoint, at the end."""
    k1 = f(y)
    k2 = f(y + 0.5 * h * k1)
    k3 = f(y + 0.5 * h * k2)
    k4 = f(y + h * k3)
    return y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)


def integrate(f: Field, y: torch.Tensor, dt: torch.Tensor | float, n_steps: int, solver: str) -> torch.Tensor:
    """y(dt) from y(0) = y, with n_steps fixed steps of `solver` ("euler" or "rk4"), or "dopri5"
    (adaptive; n_steps is ignored)."""
    if solver == "dopri5":
        return integrate_adaptive(f, y, dt)
    if solver not in FIXED_STEP_SOLVERS:
        raise ValueError(f"solver must be one of {(*FIXED_STEP_SOLVERS, 'dopri5')}, got {solver!r}")
    step = euler_step if solver == "euler" else rk4_step
    h = dt / n_steps
    for _ in range(n_steps):
        y = step(f, y, h)
    return y


def integrate_adaptive(
    f: Field, y: torch.Tensor, dt: torch.Tensor | float, rtol: float = 1e-7, atol: float = 1e-9
) -> torch.Tensor:
    """y(dt) by Dormand-Prince 5(4) (torchdiffeq). A per-example dt is handled by rescaling time:
    with s = t / dt, dy/ds = dt f(y), integrated over s in [0, 1] for every example at once."""
    try:
        from torchdiffeq import odeint
    except ImportError as error:  # an optional dependency: the fixed-step solvers need nothing
        raise ImportError("solver='dopri5' needs torchdiffeq: pip install torchdiffeq") from error
    s = torch.tensor([0.0, 1.0], dtype=y.dtype, device=y.device)
    return odeint(lambda _, state: dt * f(state), y, s, rtol=rtol, atol=atol, method="dopri5")[-1]
