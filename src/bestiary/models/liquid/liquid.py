"""Liquid neural networks: Liquid Time-Constant (LTC) cells and their closed-form version (CfC).

Papers: "Liquid Time-constant Networks" (Hasani, Lechner, Amini, Rus & Grosu, 2021, AAAI,
arXiv:2006.04439); "Closed-form Continuous-time Neural Networks" (Hasani, Lechner, Amini, Liebenwein,
Ray, Tschaikowski, Teschl & Rus, 2022, Nature Machine Intelligence, arXiv:2106.13898).

An LTC neuron is a leaky membrane whose synapses are nonlinear conductances: neuron i's potential v_i
obeys  C_i dv_i/dt = g_leak,i (v_leak,i - v_i) + sum_j w_ji s_ji(v_j) (E_ji - v_i),  with s a sigmoid
of the presynaptic potential (inputs u_j reach neurons through the same kind of synapse). Because
the conductances depend on the state, the effective time constant C / (g_leak + sum w s) varies
with the input: the network is "liquid". Time is continuous, so irregularly sampled sequences are
natural: each step integrates over its own elapsed time `dt`. Solvers (`solver`): the paper's fused
semi-implicit Euler step, v <- (C/h v + g_leak v_leak + sum w s E) / (C/h + g_leak + sum w s), which
stays bounded for any step size; explicit Euler; RK4; adaptive Dormand-Prince (torchdiffeq).

CfC drops the solver: it approximates the LTC's solution in closed form with a time-gated mix of two
learned targets, h(t) = sigma(-f(x, I; theta_f) t) * g(x, I) + (1 - sigma(-f t)) * h(x, I), where f,
g, h are heads of a shared "backbone" MLP over [input, state]; one step costs one MLP, whatever dt.

Parameterisation as the ncps package's fully connected cells (its weights copy across): softplus
keeps w, sensory_w, C and g_leak positive (ncps' implicit_param_constraints=True); the LTC has
affine input and output maps. Simplified: no sparse NCP wiring (every neuron connects to every
other), no mixed-memory LSTM, no output projection.

Sequence model: (B, T, in_dim) (+ optional elapsed times dt (B, T)) -> (B, T, d_model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.ode import integrate
from bestiary.layers.state import RecurrentState, zeros_or
from bestiary.options import option
from bestiary.registry import register

LTC_SOLVERS = ("semi_implicit", "euler", "rk4", "dopri5")


@dataclass(kw_only=True)
class Config:
    in_dim: int = 8
    d_model: int = 32  # neurons (LTC) / state size (CfC)
    cell: str = option("cfc", choices=("ltc", "cfc"))
    # LTC
    solver: str = option("semi_implicit", choices=LTC_SOLVERS)
    ode_unfolds: int = option(6, min=1)  # solver steps per input step
    # CfC
    cfc_mode: str = option("default", choices=("default", "no_gate", "pure"))
    d_ff: int = 128  # backbone width
    backbone_layers: int = option(1, min=0)
    dropout: float = 0.0  # in the backbone


def _uniform(shape: tuple[int, ...], low: float, high: float) -> nn.Parameter:
    return nn.Parameter(torch.rand(*shape) * (high - low) + low)


class LTCCell(nn.Module):
    """One LTC step: (input u (B, I), potentials v (B, H), elapsed time dt) -> new potentials (B, H).

    Synapse parameters are (source, target) matrices; the sensory_* ones connect inputs to neurons.
    Initial ranges are the reference implementation's."""

    def __init__(self, in_dim: int, units: int, solver: str, ode_unfolds: int, epsilon: float = 1e-8):
        super().__init__()
        self.solver, self.ode_unfolds, self.epsilon = solver, ode_unfolds, epsilon
        self.gleak = _uniform((units,), 0.001, 1.0)  # leak conductance (softplus-ed)
        self.vleak = _uniform((units,), -0.2, 0.2)  # leak reversal potential
        self.cm = _uniform((units,), 0.4, 0.6)  # membrane capacitance (softplus-ed)
        self.sigma = _uniform((units, units), 3, 8)  # synapse sigmoid slopes
        self.mu = _uniform((units, units), 0.3, 0.8)  # and midpoints
        self.w = _uniform((units, units), 0.001, 1.0)  # maximal conductances (softplus-ed)
        self.erev = nn.Parameter(torch.randint(0, 2, (units, units)).float() * 2 - 1)  # +1 excite, -1 inhibit
        self.sensory_sigma = _uniform((in_dim, units), 3, 8)
        self.sensory_mu = _uniform((in_dim, units), 0.3, 0.8)
        self.sensory_w = _uniform((in_dim, units), 0.001, 1.0)
        self.sensory_erev = nn.Parameter(torch.randint(0, 2, (in_dim, units)).float() * 2 - 1)
        self.input_w, self.input_b = nn.Parameter(torch.ones(in_dim)), nn.Parameter(torch.zeros(in_dim))
        self.output_w, self.output_b = nn.Parameter(torch.ones(units)), nn.Parameter(torch.zeros(units))

    @staticmethod
    def _synapses(pre: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """Conductance of every synapse: w * sigmoid(sigma (v_pre - mu)), (B, S, H) for pre (B, S)."""
        return F.softplus(w) * torch.sigmoid(sigma * (pre.unsqueeze(-1) - mu))

    def forward(self, u: torch.Tensor, v: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        """u (B, I), v (B, H), dt (B, 1) -> v after dt."""
        u = u * self.input_w + self.input_b
        sensory = self._synapses(u, self.sensory_w, self.sensory_mu, self.sensory_sigma)  # (B, I, H)
        # the input is held constant over the step: its currents are computed once
        sensory_num = (sensory * self.sensory_erev).sum(1)  # (B, H): sum w s E
        sensory_den = sensory.sum(1)  # (B, H): sum w s
        cm, gleak = F.softplus(self.cm), F.softplus(self.gleak)

        def currents(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """numerator and denominator: C dv/dt = numerator - denominator * v."""
            recurrent = self._synapses(v, self.w, self.mu, self.sigma)  # (B, H, H)
            numerator = gleak * self.vleak + (recurrent * self.erev).sum(1) + sensory_num
            denominator = gleak + recurrent.sum(1) + sensory_den
            return numerator, denominator

        if self.solver == "semi_implicit":
            # the paper's fused step: the leak and synaptic terms in v are taken at the new v
            cm_over_h = cm / (dt / self.ode_unfolds)  # (B, H)
            for _ in range(self.ode_unfolds):
                numerator, denominator = currents(v)
                v = (cm_over_h * v + numerator) / (cm_over_h + denominator + self.epsilon)
            return v

        def dv_dt(v: torch.Tensor) -> torch.Tensor:
            numerator, denominator = currents(v)
            return (numerator - denominator * v) / cm

        return integrate(dv_dt, v, dt, self.ode_unfolds, self.solver)

    def readout(self, v: torch.Tensor) -> torch.Tensor:
        return v * self.output_w + self.output_b


class LeCunTanh(nn.Module):
    """1.7159 tanh(0.666 x): LeCun's scaled tanh ("Efficient BackProp", 1998), the CfC backbone's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.7159 * torch.tanh(0.666 * x)


class CfCCell(nn.Module):
    """One CfC step: (input (B, I), state (B, H), elapsed time dt) -> new state (B, H)."""

    def __init__(self, in_dim: int, units: int, mode: str, d_ff: int, backbone_layers: int, dropout: float):
        super().__init__()
        self.mode = mode
        layers: list[nn.Module] = []
        width = in_dim + units
        for _ in range(backbone_layers):
            layers += [nn.Linear(width, d_ff), LeCunTanh(), nn.Dropout(dropout)]
            width = d_ff
        self.backbone = nn.Sequential(*layers)  # empty: the heads read [input, state] directly
        self.ff1 = nn.Linear(width, units)  # g: the state's value at t = 0 side
        if mode == "pure":  # the direct closed-form solution of the LTC equation, no second head
            self.w_tau = nn.Parameter(torch.zeros(1, units))
            self.A = nn.Parameter(torch.ones(1, units))
        else:
            self.ff2 = nn.Linear(width, units)  # h: the value it decays towards
            self.time_a = nn.Linear(width, units)  # f: how fast (per unit of time) ...
            self.time_b = nn.Linear(width, units)  # ... and from where
        for p in self.parameters():  # Xavier for the matrices, as the reference (w_tau and A keep 0 and 1)
            if p.dim() == 2 and p.shape[0] != 1:
                nn.init.xavier_uniform_(p)

    def forward(self, u: torch.Tensor, h: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        z = self.backbone(torch.cat([u, h], dim=-1))  # (B, d_ff)
        ff1 = self.ff1(z)  # (B, H)
        if self.mode == "pure":
            return -self.A * torch.exp(-dt * (self.w_tau.abs() + ff1.abs())) * ff1 + self.A
        ff1, ff2 = torch.tanh(ff1), torch.tanh(self.ff2(z))
        gate = torch.sigmoid(self.time_a(z) * dt + self.time_b(z))  # (B, H): the time-dependent gate
        if self.mode == "no_gate":
            return ff1 + gate * ff2
        return ff1 * (1 - gate) + gate * ff2

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        return h


@register(
    "liquid",
    family="liquid",
    config=Config,
    summary="Liquid time-constant (LTC, ODE-solved) and closed-form continuous-time (CfC) recurrent cells.",
    paper="Liquid Time-constant Networks",
    year=2021,
    arxiv="2006.04439",
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=3, d_model=8, d_ff=16),
    outputs="outputs (B, T, d_model)",
)
class LiquidNetwork(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = self.config = config
        self.num_features = c.d_model
        if c.cell == "ltc":
            self.cell: nn.Module = LTCCell(c.in_dim, c.d_model, c.solver, c.ode_unfolds)
        else:
            self.cell = CfCCell(c.in_dim, c.d_model, c.cfc_mode, c.d_ff, c.backbone_layers, c.dropout)

    def init_cache(self, batch: int = 1) -> RecurrentState:
        return RecurrentState(self, batch, ("h",))

    def forward_features(
        self, x: torch.Tensor, *, dt: torch.Tensor | float | None = None, cache: RecurrentState | None = None
    ) -> torch.Tensor:
        return self.forward(x, dt=dt, cache=cache)

    def forward(
        self, x: torch.Tensor, *, dt: torch.Tensor | float | None = None, cache: RecurrentState | None = None
    ) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model). dt: the time elapsed at each step, (B, T) or a
        float (default 1: a regularly sampled sequence). With `cache`, x and dt hold only new steps."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        B, T = x.shape[:2]
        if dt is None or isinstance(dt, (int, float)):
            dt = x.new_full((B, T), 1.0 if dt is None else float(dt))
        check_shape(dt, "B T", name="dt", B=B, T=T)
        if cache is not None:
            cache.check(self, x)
        h = zeros_or(cache, "h", lambda: x.new_zeros(B, self.config.d_model))
        outputs = []
        for t in range(T):
            h = self.cell(x[:, t], h, dt[:, t, None])  # dt (B, 1) broadcasts over the units
            outputs.append(self.cell.readout(h))
        if cache is not None:
            cache["h"] = h
            cache.length += T
        return torch.stack(outputs, dim=1)  # (B, T, d_model)
