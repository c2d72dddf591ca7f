"""Multi-layer perceptron: Linear -> activation, repeated, then a Linear head.

Paper: "Learning representations by back-propagating errors" (Rumelhart, Hinton & Williams, 1986,
Nature 323). The universal-approximation view is Cybenko (1989) and Hornik (1991).

This file is the template for every architecture in Bestiary: a `Config` dataclass whose defaults
are a small useful model, an `nn.Module` that takes it, `@register` with the paper and a tiny
config (the registry makes example inputs from `input_kind`: here vectors (B, in_dim)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import check_shape, make_activation
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 2  # input features
    d_model: int = 64  # hidden width
    n_layers: int = option(2, min=0)  # hidden layers (0: a linear model)
    num_classes: int = 3  # outputs (classes, or regression targets)
    activation: str = "relu"
    dropout: float = 0.0


@register(
    "mlp",
    family="feedforward",
    config=Config,
    summary="Stacked Linear + nonlinearity layers: the first neural network anyone should train.",
    paper="Learning representations by back-propagating errors",
    year=1986,
    arxiv=None,
    input_kind="vector",
    tiny=dict(in_dim=4, d_model=8, n_layers=1, num_classes=3),
    outputs="logits (B, num_classes)",
)
class MLP(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = config.in_dim
        for _ in range(config.n_layers):
            layers += [
                nn.Linear(width, config.d_model),
                make_activation(config.activation),
                nn.Dropout(config.dropout),
            ]
            width = config.d_model
        self.body = nn.Sequential(*layers)
        self.num_features = width
        self.head = nn.Linear(width, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> the last hidden layer's activations (B, d_model) (x itself when n_layers=0)."""
        check_shape(x, "B F", name="x", F=self.config.in_dim)
        return self.body(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
