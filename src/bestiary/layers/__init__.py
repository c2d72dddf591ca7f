"""Shared building blocks. A block used by two models lives here, never copied into both."""

from bestiary.layers.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from bestiary.layers.checks import ShapeError, check_shape
from bestiary.layers.mlp import FeedForward, SwiGLU, make_activation
from bestiary.layers.norms import RMSNorm, make_norm

__all__ = [
    "FeedForward",
    "MultiHeadAttention",
    "RMSNorm",
    "ShapeError",
    "SwiGLU",
    "causal_mask",
    "check_shape",
    "make_activation",
    "make_norm",
    "scaled_dot_product_attention",
]
