"""Shared building blocks. A block used by two models lives here, never copied into both."""

from bestiary.layers.attention import CrossAttention, MultiHeadAttention, scaled_dot_product_attention
from bestiary.layers.block import Block, ChannelScale, make_mlp, transformer_block
from bestiary.layers.checks import ShapeError, check_shape, check_tokens
from bestiary.layers.drop_path import make_dropout
from bestiary.layers.kv_cache import Cache, KVCache
from bestiary.layers.masks import causal_mask, combine_masks, padding_mask, sliding_window_mask
from bestiary.layers.mixer import TokenMixer, can_decode
from bestiary.layers.mlp import FeedForward, SwiGLU, make_activation
from bestiary.layers.norms import RMSNorm, make_norm
from bestiary.layers.positions import (
    LearnedPositions,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
)

__all__ = [
    "Block",
    "Cache",
    "ChannelScale",
    "CrossAttention",
    "TokenMixer",
    "can_decode",
    "FeedForward",
    "KVCache",
    "LearnedPositions",
    "MultiHeadAttention",
    "RMSNorm",
    "RelativePositionBias",
    "RotaryEmbedding",
    "ShapeError",
    "SinusoidalPositions",
    "SwiGLU",
    "alibi_bias",
    "alibi_slopes",
    "causal_mask",
    "check_shape",
    "check_tokens",
    "combine_masks",
    "make_activation",
    "make_dropout",
    "make_mlp",
    "make_norm",
    "padding_mask",
    "scaled_dot_product_attention",
    "sliding_window_mask",
    "transformer_block",
]
