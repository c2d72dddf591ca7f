"""The vision-transformer encoder block: bidirectional self-attention and an MLP in the one `Block`.

"An Image is Worth 16x16 Words" (Dosovitskiy et al., 2020, arXiv:2010.11929):

    x = x + drop_path(gamma1 * attn(norm(x)));  x = x + drop_path(gamma2 * mlp(norm(x)))

The optional LayerScale (gamma, a learned per-channel scale started near zero so that each residual
branch begins almost switched off) is from "Going deeper with Image Transformers" (CaiT, Touvron et
al., 2021, arXiv:2103.17239); DINOv2 and DINOv3 use it. ViT, DeiT, DINOv2/v3, Vision KAN and KAT
all stack this block; they differ in the MLP (GELU, SwiGLU, KAN layers), the biases of q/k/v and
the positions (learned embeddings added to the tokens, or DINOv3's 2-D `rope`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp


def vit_block(
    d_model: int,
    n_heads: int,
    d_ff: int,
    *,
    mlp: str | nn.Module = "gelu",
    qkv_bias: bool | tuple[bool, bool, bool] = True,
    rope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    norm_eps: float = 1e-6,
    dropout: float = 0.0,
    drop_path: float = 0.0,
    layer_scale: float | None = None,
) -> Block:
    """A pre-norm ViT block, (B, N, d_model) -> (B, N, d_model).

    mlp: a kind for `make_mlp` ("gelu", "swiglu", ...; Linear layers with biases, hidden size
    d_ff) or a built module (a KAN feed-forward). qkv_bias: one bool for q, k and v, or three
    (DINOv3's key has none); the output projection always has a bias, as in every released ViT.
    dropout: on the attention weights and on each branch's output (the MLP has none of its own).
    """
    attention = MultiHeadAttention(
        d_model, n_heads, qkv_bias=qkv_bias, out_bias=True, dropout=dropout, rope=rope
    )
    if isinstance(mlp, str):
        mlp = make_mlp(mlp, d_model, d_ff, bias=True)
    return Block(
        d_model,
        attention,
        mlp,
        norm_eps=norm_eps,
        dropout=dropout,
        drop_path=drop_path,
        layer_scale=layer_scale,
    )
