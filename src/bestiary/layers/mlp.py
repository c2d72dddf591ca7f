"""Position-wise feed-forward blocks: the classic two-layer MLP and the gated SwiGLU.

SwiGLU and GeGLU: "GLU Variants Improve Transformer" (Shazeer, 2020, arXiv:2002.05202). Squared ReLU:
"Primer: Searching for Efficient Transformers for Language Modeling" (So et al., 2021,
arXiv:2109.08668); StarReLU: "MetaFormer Baselines for Vision" (Yu et al., 2022, arXiv:2210.13452).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.drop_path import make_dropout


class SquaredReLU(nn.Module):
    """relu(x)^2."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x) ** 2


class StarReLU(nn.Module):
    """s * relu(x)^2 + b with learned scalars s and b: squared ReLU, rescaled so that its output
    has roughly zero mean and unit variance for a standard normal input (the defaults)."""

    def __init__(self, scale: float = 0.8944, bias: float = -0.4472):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(scale))
        self.bias = nn.Parameter(torch.tensor(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * F.relu(x) ** 2 + self.bias


ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "squared_relu": SquaredReLU,
    "star_relu": StarReLU,
}


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class FeedForward(nn.Module):
    """d_model -> d_ff -> activation -> d_model."""

    def __init__(
        self, d_model: int, d_ff: int, activation: str = "gelu", bias: bool = True, dropout: float = 0.0
    ):
        super().__init__()
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.act = make_activation(activation)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.dropout = make_dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


class SwiGLU(nn.Module):
    """down(act(gate(x)) * up(x)): the gate decides, per hidden unit, how much of `up` passes.

    act = SiLU is SwiGLU (Llama); act = GELU-tanh is GeGLU (Gemma, Griffin), same paper."""

    def __init__(
        self, d_model: int, d_ff: int, bias: bool = False, dropout: float = 0.0, activation: str = "silu"
    ):
        super().__init__()
        self.gate = nn.Linear(d_model, d_ff, bias=bias)
        self.up = nn.Linear(d_model, d_ff, bias=bias)
        self.down = nn.Linear(d_ff, d_model, bias=bias)
        self.act = F.silu if activation == "silu" else make_activation(activation)
        self.dropout = make_dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.gate(x)) * self.up(x)))
