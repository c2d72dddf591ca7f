"""One transformer block (attention + feed-forward, each wrapped in a norm and a residual).

"Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762) puts the norm AFTER each
residual sum (post-norm, BERT); GPT-2 onwards put it BEFORE each sub-layer (pre-norm: "On Layer
Normalization in the Transformer Architecture", Xiong et al., 2020, arXiv:2002.04745), which keeps
an identity path from input to output and trains without warm-up tricks. Both are here, plus an
optional cross-attention sub-layer for encoder-decoder models.

Every transformer in `bestiary.models.transformer` stacks this block.
"""

from __future__ import annotations

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.drop_path import make_dropout
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.mlp import FeedForward, SwiGLU
from bestiary.layers.norms import make_norm
from bestiary.layers.positions import RotaryEmbedding


def make_mlp(kind: str, d_model: int, d_ff: int, bias: bool = False, dropout: float = 0.0) -> nn.Module:
    """'swiglu' -> SwiGLU; any activation name ('gelu', 'gelu_tanh', 'relu', ...) -> FeedForward."""
    if kind == "swiglu":
        return SwiGLU(d_model, d_ff, bias=bias, dropout=dropout)
    return FeedForward(d_model, d_ff, activation=kind, bias=bias, dropout=dropout)


class TransformerBlock(nn.Module):
    """x -> x + attn(norm(x)) -> x + mlp(norm(x))   (pre-norm; post-norm: norm(x + attn(x)) ...).

    With `cross_attention=True` a third sub-layer attends to `context` (the encoder output).
    Submodules: attn_norm, attn, [cross_norm, cross_attn], mlp_norm, mlp.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        norm: str = "rmsnorm",
        norm_eps: float = 1e-5,
        norm_bias: bool = True,
        mlp: str = "swiglu",
        bias: bool = False,
        mlp_bias: bool | None = None,
        dropout: float = 0.0,
        pre_norm: bool = True,
        cross_attention: bool = False,
        attn_scale: float | None = None,
        fused_qkv: bool = False,
    ):
        super().__init__()
        self.pre_norm = pre_norm
        mlp_bias = bias if mlp_bias is None else mlp_bias
        self.attn_norm = make_norm(norm, d_model, norm_eps, norm_bias)
        self.attn = MultiHeadAttention(
            d_model, n_heads, n_kv_heads, head_dim, bias, dropout, scale=attn_scale, fused_qkv=fused_qkv
        )
        self.cross_attn = None
        if cross_attention:
            self.cross_norm = make_norm(norm, d_model, norm_eps, norm_bias)
            self.cross_attn = MultiHeadAttention(
                d_model, n_heads, n_kv_heads, head_dim, bias, dropout, attn_scale
            )
        self.mlp_norm = make_norm(norm, d_model, norm_eps, norm_bias)
        self.mlp = make_mlp(mlp, d_model, d_ff, mlp_bias, dropout)
        self.dropout = make_dropout(dropout)

    def _sublayer(self, x: torch.Tensor, norm: nn.Module, fn) -> torch.Tensor:
        if self.pre_norm:
            return x + self.dropout(fn(norm(x)))
        return norm(x + self.dropout(fn(x)))

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
        *,
        rope: RotaryEmbedding | None = None,
        start_pos: int = 0,
        kv_cache: KVCache | None = None,
        layer_idx: int = 0,
        attn_bias: torch.Tensor | None = None,
        window: int | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        context_bias: torch.Tensor | None = None,
        manual: bool = False,
    ) -> torch.Tensor:
        x = self._sublayer(
            x,
            self.attn_norm,
            lambda h: self.attn(
                h,
                mask=mask,
                is_causal=is_causal,
                manual=manual,
                rope=rope,
                start_pos=start_pos,
                kv_cache=kv_cache,
                layer_idx=layer_idx,
                attn_bias=attn_bias,
                window=window,
            ),
        )
        if self.cross_attn is not None:
            if context is None:
                raise ValueError("this block has cross-attention: pass context (B, S, d_model)")
            x = self._sublayer(
                x,
                self.cross_norm,
                lambda h: self.cross_attn(
                    h, context, mask=context_mask, manual=manual, attn_bias=context_bias
                ),
            )
        return self._sublayer(x, self.mlp_norm, self.mlp)
