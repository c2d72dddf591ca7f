"""The pre-norm transformer encoder block used by the vision transformers (ViT, DeiT, DINOv2, ...).

x = x + drop_path(gamma1 * attn(norm1(x)));  x = x + drop_path(gamma2 * mlp(norm2(x)))

"An Image is Worth 16x16 Words" (Dosovitskiy et al., 2020, arXiv:2010.11929). The optional
LayerScale (gamma, a learned per-channel scale started near zero so that each residual branch
begins almost switched off) is from "Going deeper with Image Transformers" (CaiT, Touvron et al.,
2021, arXiv:2103.17239); DINOv2 uses it.
"""

from __future__ import annotations

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.drop_path import DropPath
from bestiary.layers.mlp import FeedForward, SwiGLU


class LayerScale(nn.Module):
    """Multiply the last dimension by a learned vector, initialised to `init_value`."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


def make_ffn(ffn: str, d_model: int, d_ff: int, activation: str = "gelu", dropout: float = 0.0) -> nn.Module:
    """The feed-forward of a vision-transformer block: "mlp" (Linear -> activation -> Linear) or
    "swiglu" (the gated FFN of DINOv2-giant / DINOv3 "+"; d_ff is the hidden size of each branch)."""
    if ffn == "mlp":
        return FeedForward(d_model, d_ff, activation=activation, dropout=dropout)
    if ffn == "swiglu":
        return SwiGLU(d_model, d_ff, bias=True, dropout=dropout)
    raise ValueError(f"ffn must be 'mlp' or 'swiglu', got {ffn!r}")


class ViTBlock(nn.Module):
    """Pre-norm self-attention + MLP block. (B, N, D) -> (B, N, D)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        qkv_bias: bool = True,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        eps: float = 1e-6,
        activation: str = "gelu",
        ffn: str = "mlp",
        mlp: nn.Module | None = None,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=eps)
        self.attn = MultiHeadAttention(d_model, n_heads, bias=qkv_bias, dropout=dropout)
        if not qkv_bias:  # only q/k/v lose their bias; the output projection keeps it (as in timm)
            self.attn.out_proj = nn.Linear(d_model, d_model)
        self.ls1 = LayerScale(d_model, layer_scale) if layer_scale is not None else nn.Identity()
        self.norm2 = nn.LayerNorm(d_model, eps=eps)
        # `mlp`: any (B, N, D) -> (B, N, D) module, e.g. a KAN (vision_kan, kat)
        self.mlp = mlp if mlp is not None else make_ffn(ffn, d_model, d_ff, activation, dropout)
        self.ls2 = LayerScale(d_model, layer_scale) if layer_scale is not None else nn.Identity()
        self.drop_path = DropPath(drop_path)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.ls1(self.dropout(self.attn(self.norm1(x)))))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
