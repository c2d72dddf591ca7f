"""BitNet b1.58 as a feed-forward classifier: residual MLP blocks whose Linear layers are BitLinear.

Papers: "The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits" (Ma et al., 2024,
arXiv:2402.17764) and "BitNet: Scaling 1-bit Transformers for Large Language Models" (Wang et al.,
2023, arXiv:2310.11453).

BitNet replaces the Linear layers *inside* the network by `BitLinear` (ternary weights {-1, 0, +1}
times one scale, 8-bit activations, straight-through gradients; see `bestiary.layers.bitlinear`).
As in the papers, the input projection (their token embedding) and the output head stay in full
precision: they are a small share of the weights and quantising them costs the most accuracy.

The papers build Llama-style language models out of BitLinear; this file shows the same layer in
the smallest setting that trains in seconds: x (B, in_dim) -> Linear -> [x + BitFFN(x)] * n_layers
-> RMSNorm -> Linear -> logits (B, num_classes), with BitFFN = BitLinear -> activation -> BitLinear.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import RMSNorm, check_shape, make_activation
from bestiary.layers.bitlinear import BitLinear
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 2  # input features
    d_model: int = 64  # residual width
    d_ff: int = 128  # hidden width of each BitLinear feed-forward block
    n_layers: int = 2  # residual BitLinear blocks
    num_classes: int = 3
    activation: str = "relu"  # b1.58's LLMs use SwiGLU; any activation works for the lesson
    activation_bits: int = option(8, min=2, max=16)  # bits of the per-token absmax activation quantiser
    dropout: float = 0.0


class BitFeedForward(nn.Module):
    """BitLinear(d_model -> d_ff) -> activation -> BitLinear(d_ff -> d_model); each BitLinear normalises first."""

    def __init__(self, config: Config):
        super().__init__()
        self.up = BitLinear(config.d_model, config.d_ff, activation_bits=config.activation_bits)
        self.act = make_activation(config.activation)
        self.down = BitLinear(config.d_ff, config.d_model, activation_bits=config.activation_bits)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.act(self.up(x))))


@register(
    "bitnet",
    family="feedforward",
    config=Config,
    summary="Ternary-weight (1.58-bit) BitLinear layers with 8-bit activations, trained by straight-through.",
    paper="The Era of 1-bit LLMs: All Large Language Models are in 1.58 Bits",
    year=2024,
    arxiv="2402.17764",
    input_kind="vector",
    tiny=dict(in_dim=4, d_model=8, d_ff=16, n_layers=1, num_classes=3),
    outputs="logits (B, num_classes)",
)
class BitNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.in_dim, config.d_model)  # full precision, like an embedding
        self.blocks = nn.ModuleList(BitFeedForward(config) for _ in range(config.n_layers))
        self.norm = RMSNorm(config.d_model)
        self.num_features = config.d_model
        self.head = nn.Linear(config.d_model, config.num_classes)  # full precision

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_dim) -> the normalised residual stream (B, d_model)."""
        check_shape(x, "B F", name="x", F=self.config.in_dim)
        h = self.embed(x)  # (B, d_model)
        for block in self.blocks:
            h = h + block(h)  # residual: a block can start as "almost nothing" and grow
        return self.norm(h)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
