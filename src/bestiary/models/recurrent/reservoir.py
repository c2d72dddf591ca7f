"""Echo State Network: a fixed random recurrent reservoir and a linear readout fitted in closed form.

Papers: "The 'echo state' approach to analysing and training recurrent neural networks" (Jaeger,
2001, GMD Report 148); "A Practical Guide to Applying Echo State Networks" (Lukoševičius, 2012, in
Neural Networks: Tricks of the Trade). No arXiv id.

Training a recurrent network's weights through time is slow and unstable. An ESN does not train
them: a large, sparse, random recurrent matrix W (scaled so its spectral radius is below 1) and a
random input matrix W_in stay fixed, and the leaky state update

    x_t = (1 - a) x_{t-1} + a tanh(W_in u_t + W x_{t-1} + b)         (a: the leak rate)

turns the input history into a rich, fading "echo" of it. Only the linear readout y_t = W_out x_t
+ b_out is learned, by ridge regression on the collected states: one linear solve, no gradient
descent (`fit`). With spectral radius < 1 the state forgets its initial condition (the echo-state
property), so the reservoir is a fixed function of the recent inputs.

Simplified: the readout reads the reservoir state only (the guide also offers [1; u_t; x_t]); the
reservoir matrices are dense tensors with zeros (sparse storage would save memory, not change the
maths). The reservoir is fixed (buffers, no gradient); the readout is an ordinary Linear, so the
model can also be trained by gradient descent, or wrapped as a language model (`build_lm`).

Sequence model: (B, T, in_dim) -> readout outputs (B, T, out_dim); `forward_features` gives the
reservoir states (B, T, d_model); `init_cache` keeps the state for step-by-step use.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.state import RecurrentState, zeros_or
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 1
    d_model: int = 500  # reservoir size (number of neurons)
    out_dim: int | None = option(None, min=1)  # readout width; None: d_model
    spectral_radius: float = option(0.9, gt=0.0)  # largest |eigenvalue| of W; < 1 for the echo-state property
    density: float = option(0.1, gt=0.0, max=1.0)  # fraction of nonzero recurrent weights
    leak_rate: float = option(0.3, gt=0.0, max=1.0)  # a: 1 = no leak, small = slow dynamics
    input_scaling: float = option(1.0, gt=0.0)  # W_in ~ U(-s, s)
    bias_scaling: float = option(0.0, min=0.0)  # b ~ U(-s, s)
    washout: int = option(0, min=0)  # initial steps left out of `fit` (the state still remembers x_0)


@register(
    "reservoir",
    family="recurrent",
    config=Config,
    summary="Echo State Network: fixed random sparse reservoir, linear readout fitted by ridge regression.",
    paper="The 'echo state' approach to analysing and training recurrent neural networks",
    year=2001,
    arxiv=None,
    input_kind="sequence",
    causal=True,
    tiny=dict(in_dim=3, d_model=24, density=0.5),
    outputs="readout outputs (B, T, out_dim)",
)
class EchoStateNetwork(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = self.config = config
        self.num_features = c.d_model
        self.out_dim = c.out_dim or c.d_model
        N = c.d_model
        # the fixed reservoir: buffers, so they are saved and moved with the model but never trained
        w_in = (torch.rand(N, c.in_dim) * 2 - 1) * c.input_scaling  # (N, in_dim)
        bias = (torch.rand(N) * 2 - 1) * c.bias_scaling  # (N,)
        w = (torch.rand(N, N) * 2 - 1) * (torch.rand(N, N) < c.density)  # (N, N), sparse
        radius = torch.linalg.eigvals(w).abs().max()
        if radius > 0:  # a tiny reservoir can draw an all-zero (or nilpotent) W: leave it as it is
            w = w * (c.spectral_radius / radius)
        self.register_buffer("w_in", w_in)
        self.register_buffer("w", w)
        self.register_buffer("bias", bias)
        self.readout = nn.Linear(N, self.out_dim)

    def init_cache(self, batch: int = 1) -> RecurrentState:
        return RecurrentState(self, batch, ("x",))

    def forward_features(
        self, u: torch.Tensor, *, cache: RecurrentState | None = None, x0: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Inputs u (B, T, in_dim) -> reservoir states x (B, T, d_model). x0: an initial state (B, N)
        (default zeros, or the cache's)."""
        check_shape(u, "B T D", name="u", D=self.config.in_dim)
        if cache is not None:
            cache.check(self, u)
        a = self.config.leak_rate
        x = (
            x0
            if x0 is not None
            else zeros_or(cache, "x", lambda: u.new_zeros(u.shape[0], self.config.d_model))
        )
        drive = u @ self.w_in.T + self.bias  # (B, T, N): the input's part, for every step at once
        states = []
        for t in range(u.shape[1]):
            x = (1 - a) * x + a * torch.tanh(drive[:, t] + x @ self.w.T)
            states.append(x)
        if cache is not None:
            cache["x"] = x
            cache.length += u.shape[1]
        return torch.stack(states, dim=1)  # (B, T, N)

    def forward_head(self, states: torch.Tensor) -> torch.Tensor:
        return self.readout(states)  # (B, T, out_dim)

    def forward(self, u: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        return self.forward_head(self.forward_features(u, cache=cache))

    @torch.no_grad()
    def fit(self, inputs: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-6) -> EchoStateNetwork:
        """Fit the readout by ridge regression: inputs (B, T, in_dim), targets (B, T, out_dim).

        Collects the states (after `washout` steps), centres states and targets (so the bias is not
        penalised, as scikit-learn's Ridge(fit_intercept=True)) and solves
        (X^T X + ridge I) W_out^T = X^T Y; then b_out = mean(Y) - mean(X) W_out^T."""
        check_shape(targets, "B T D", name="targets", D=self.out_dim)
        if targets.shape[:2] != inputs.shape[:2]:
            raise ValueError(
                f"targets {tuple(targets.shape)} must match inputs {tuple(inputs.shape)} in (B, T)"
            )
        skip = self.config.washout
        if skip >= inputs.shape[1]:
            raise ValueError(
                f"washout={skip} leaves no step of a sequence of length {inputs.shape[1]} to fit"
            )
        states = self.forward_features(inputs)[:, skip:].flatten(0, 1)  # (B * (T - washout), N)
        y = targets[:, skip:].flatten(0, 1)  # (B * (T - washout), out_dim)
        x_mean, y_mean = states.mean(0), y.mean(0)
        xc, yc = states - x_mean, y - y_mean
        gram = xc.T @ xc + ridge * torch.eye(xc.shape[1], dtype=xc.dtype, device=xc.device)  # (N, N)
        w_out = torch.linalg.solve(gram, xc.T @ yc).T  # (out_dim, N)
        self.readout.weight.copy_(w_out)
        self.readout.bias.copy_(y_mean - w_out @ x_mean)
        return self
