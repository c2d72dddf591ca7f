"""Kolmogorov–Arnold Network: learnable spline functions on the edges, plain sums on the nodes.

Paper: "KAN: Kolmogorov-Arnold Networks" (Liu, Wang, Vaidya, Ruehle, Halverson, Soljačić, Hou &
Tegmark, 2024, arXiv:2404.19756).

An MLP puts fixed nonlinearities on the nodes and learnable scalars on the edges. A KAN swaps that:
every edge carries a learnable 1-D function (a B-spline plus a SiLU "base"), and each node only adds
its incoming edges. The Kolmogorov–Arnold representation theorem says any continuous function of n
variables is a sum of such 1-D functions of sums; a KAN makes that shape deep and trainable.

The layer lives in `bestiary.layers.kan.KANLinear` (shared with `kat`). Splines are non-zero only on
`grid_range`, so standardise the inputs (the SiLU branch still sees values outside it). The paper's
grid extension (train on a coarse grid, then refine it and train on) is `KAN.refine_grid`; its
data-adaptive grids and pruning/symbolic regression tools are not implemented here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import check_shape
from bestiary.layers.kan import KANLinear
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 2  # input features
    d_model: int = 16  # hidden width (KANs need far fewer units than MLPs)
    n_layers: int = option(1, min=0)  # hidden KAN layers (0: one KAN layer from input to output)
    num_classes: int = 3  # outputs (classes, or regression targets)
    grid_size: int = option(5, min=1)  # G: spline intervals on grid_range
    spline_order: int = option(3, min=1)  # k: 3 = cubic splines
    grid_range: tuple[float, float] = (-2.0, 2.0)  # where the splines live


@register(
    "kan",
    family="feedforward",
    config=Config,
    summary="Learnable B-spline activation on every edge, sums on the nodes (a KAN).",
    paper="KAN: Kolmogorov-Arnold Networks",
    year=2024,
    arxiv="2404.19756",
    input_kind="vector",
    tiny=dict(in_dim=4, d_model=4, n_layers=1, num_classes=3, grid_size=3),
    outputs="logits (B, num_classes)",
)
class KAN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        widths = [config.in_dim] + [config.d_model] * config.n_layers + [config.num_classes]
        self.layers = nn.ModuleList(
            KANLinear(w_in, w_out, config.grid_size, config.spline_order, tuple(config.grid_range))
            for w_in, w_out in zip(widths[:-1], widths[1:])
        )
        self.num_features = widths[-2]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> the input of the last KAN layer (B, d_model) (x itself when n_layers=0)."""
        check_shape(x, "B F", name="x", F=self.config.in_dim)
        for layer in self.layers[:-1]:  # no activation between layers: the edges are the nonlinearity
            x = layer(x)  # (B, d_model)
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The last KAN layer: (B, d_model) -> (B, num_classes)."""
        return self.layers[-1](features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def refine_grid(self, grid_size: int) -> None:
        """Give every layer a finer spline grid, keeping the learned functions (see KANLinear.refine_grid).

        Rebuild the optimizer afterwards: the spline coefficients are new, larger tensors.
        """
        for layer in self.layers:
            layer.refine_grid(grid_size)
        self.config.grid_size = grid_size
