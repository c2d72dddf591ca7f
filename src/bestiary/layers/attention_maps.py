"""Read the attention weights of a trained `MultiHeadAttention`, whichever kernel it runs.

The fused kernel (`F.scaled_dot_product_attention`) never materialises softmax(q kᵀ / √d), so
a lesson that wants to look at what a trained layer attends to recomputes it from the layer's
own weights and input: the same projections, the same rotation, the same masks.

    w = attention_weights(model.blocks[0].mixer, h)        # h: the mixer's input (B, T, d_model)
    with record_attention(model) as maps:                  # every self-attention layer at once
        model(tokens)
    maps["blocks.0.mixer"]                                  # (B, H, T, T), rows sum to 1

Only self-attention over a whole sequence (no KV cache, no padding mask) is covered; `score_bias`
layers (T5) are refused rather than approximated.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from bestiary.layers.attention import CrossAttention, MultiHeadAttention
from bestiary.layers.masks import causal_mask, sliding_window_mask
from bestiary.layers.positions import RotaryEmbedding, alibi_bias, apply_rotary

__all__ = ["attention_distance", "attention_weights", "record_attention"]


@torch.no_grad()
def attention_weights(attn: MultiHeadAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ · scale + bias, masked) of self-attention layer `attn` on its input x (B, T, D).

    Returns (B, H, T, T) float32: row i is how query i spreads its attention over keys 0..T-1.
    """
    if isinstance(attn, CrossAttention):
        raise TypeError("attention_weights covers self-attention; cross-attention reads a context")
    if attn.score_bias is not None:
        raise NotImplementedError("layers with a learned score_bias (T5) are not covered")
    T = x.shape[1]
    q, k, _ = attn._project_qkv(x)
    q, k = attn._split_heads(q, attn.n_heads), attn._split_heads(k, attn.n_kv_heads)
    if attn.rope is not None:
        positions = torch.arange(T, device=x.device)
        if isinstance(attn.rope, RotaryEmbedding):
            cos, sin = attn.rope.cos_sin(positions)
            q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        else:
            q, k = attn.rope(q, positions), attn.rope(k, positions)
    k = k.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)  # GQA: each group shares a k head
    scale = 1.0 / math.sqrt(attn.head_dim) if attn.scale is None else attn.scale
    scores = (q.float() @ k.float().transpose(-2, -1)) * scale  # (B, H, T, T)
    if attn.alibi:
        scores = scores + alibi_bias(attn.n_heads, T, T, x.device)
    mask = None
    if attn.window is not None:
        mask = sliding_window_mask(T, T, attn.window, x.device)
    elif attn.causal:
        mask = causal_mask(T, T, x.device)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1)


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, every forward pass of `model` stores each self-attention layer's weights
    (B, H, T, T) under its module name (the last call wins). Hooks are removed on exit."""
    maps: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, MultiHeadAttention) and not isinstance(module, CrossAttention):

            def hook(mod: nn.Module, args: tuple, kwargs: dict, name: str = name) -> None:
                if kwargs.get("cache") is not None or kwargs.get("mask") is not None:
                    raise ValueError("record_attention covers full-sequence calls (no cache, no mask)")
                maps[name] = attention_weights(mod, args[0])

            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        yield maps
    finally:
        for handle in handles:
            handle.remove()


def attention_distance(weights: torch.Tensor) -> torch.Tensor:
    """Mean look-back of each query: sum_j w[i, j] (i - j), for weights (..., T, T) -> (..., T)."""
    T = weights.shape[-1]
    distance = (torch.arange(T)[:, None] - torch.arange(T)[None, :]).to(weights)  # (T, T): i - j
    return (weights * distance).sum(-1)
