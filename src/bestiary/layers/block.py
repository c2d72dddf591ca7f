"""The one residual block: a token mixer and an MLP, each wrapped in a norm and a residual.

    pre-norm  (GPT-2 onwards, ViT, MetaFormer):  x = x + mixer(norm(x));  x = x + mlp(norm(x))
    post-norm (the original transformer, BERT):  x = norm(x + mixer(x));  x = norm(x + mlp(x))

"Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762) put the norm after each
residual sum; "On Layer Normalization in the Transformer Architecture" (Xiong et al., 2020,
arXiv:2002.04745) showed why the pre-norm form, which keeps an identity path from input to output,
trains without warm-up tricks. "MetaFormer is Actually What You Need for Vision" (Yu et al., 2021,
arXiv:2111.11418) made the point this module is built on: the block is the general structure, and
the token mixer (attention, pooling, a state-space scan, a recurrence) is one swappable part.

Every model in Bestiary that stacks residual blocks stacks this one: GPT-2 and Llama (attention +
MLP), BERT (post-norm), T5's decoder (a `cross_mixer` between the two), ViT/DeiT/DINOv2 (with
LayerScale and stochastic depth), PoolFormer/CAFormer (pooling or convolution as the mixer, on
(B, C, H, W) feature maps: the block does not care about layout, only `channels_last` tells
LayerScale which axis holds the channels). Parts are built by the caller and handed in; nothing is
swapped into a built block.

Optional extras, all from the papers that introduced them:
  layer_scale  a learned per-channel scale on each branch, started near zero ("Going deeper with
               Image Transformers", CaiT, Touvron et al., 2021, arXiv:2103.17239);
  res_scale    the same on the shortcut instead ("MetaFormer Baselines for Vision", Yu et al., 2022,
               arXiv:2210.13452);
  drop_path    stochastic depth: drop a whole branch per sample while training ("Deep Networks with
               Stochastic Depth", Huang et al., 2016, arXiv:1603.09382).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.drop_path import DropPath, make_dropout
from bestiary.layers.mlp import FeedForward, SwiGLU
from bestiary.layers.norms import make_norm

GATED_MLPS = {"swiglu": "silu", "geglu": "gelu_tanh"}  # mlp kind -> the gate's activation


def make_mlp(kind: str, d_model: int, d_ff: int, bias: bool = False, dropout: float = 0.0) -> nn.Module:
    """'swiglu' / 'geglu' -> a gated MLP (SiLU / GELU-tanh gate); any activation name ('gelu',
    'gelu_tanh', 'relu', ...) -> FeedForward."""
    if kind in GATED_MLPS:
        return SwiGLU(d_model, d_ff, bias=bias, dropout=dropout, activation=GATED_MLPS[kind])
    return FeedForward(d_model, d_ff, activation=kind, bias=bias, dropout=dropout)


class ChannelScale(nn.Module):
    """A learned per-channel scale (LayerScale / ResScale), for (B, ..., C) or (B, C, H, W) inputs."""

    def __init__(self, dim: int, init_value: float, channels_last: bool = True):
        super().__init__()
        self.channels_last = channels_last
        self.scale = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * (self.scale if self.channels_last else self.scale[:, None, None])


Norm = str | Callable[[int], nn.Module]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class Block(nn.Module):
    """x -> x + mixer(norm(x)) [-> x + cross_mixer(norm(x), context)] -> x + mlp(norm(x)).

    dim: the channel width. mixer, mlp, cross_mixer: built modules (the mixer follows the
    token-mixer contract of `bestiary.layers.mixer`). mlp=None makes a mixer-only block
    (x -> x + mixer(norm(x))), as in Mamba, whose mixer has its own gated expansion. norm: a kind name for `make_norm`
    ("layernorm", "rmsnorm", "none") or a callable dim -> module (e.g. a GroupNorm for feature maps).
    Submodules: mixer_norm, mixer, [cross_norm, cross_mixer], mlp_norm, mlp.
    """

    def __init__(
        self,
        dim: int,
        mixer: nn.Module,
        mlp: nn.Module | None,
        *,
        norm: Norm = "layernorm",
        norm_eps: float = 1e-5,
        norm_bias: bool = True,
        pre_norm: bool = True,
        cross_mixer: nn.Module | None = None,
        dropout: float = 0.0,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        res_scale: float | None = None,
        channels_last: bool = True,
    ):
        super().__init__()
        if not pre_norm and (layer_scale is not None or res_scale is not None or drop_path > 0):
            raise ValueError("layer_scale, res_scale and drop_path belong to pre-norm blocks")
        self.pre_norm = pre_norm

        def new_norm() -> nn.Module:
            return make_norm(norm, dim, norm_eps, norm_bias) if isinstance(norm, str) else norm(dim)

        def new_scale(value: float | None) -> nn.Module:
            return nn.Identity() if value is None else ChannelScale(dim, value, channels_last)

        self.mixer_norm, self.mixer = new_norm(), mixer
        self.cross_mixer = cross_mixer
        if cross_mixer is not None:
            self.cross_norm = new_norm()
        has_mlp = mlp is not None
        if has_mlp:
            self.mlp_norm = new_norm()
        self.mlp = mlp
        self.mixer_scale = new_scale(layer_scale)
        self.mlp_scale = new_scale(layer_scale if has_mlp else None)
        self.mixer_res_scale = new_scale(res_scale)
        self.mlp_res_scale = new_scale(res_scale if has_mlp else None)
        self.dropout = make_dropout(dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _residual(
        self,
        x: torch.Tensor,
        norm: nn.Module,
        branch: Callable[[torch.Tensor], torch.Tensor],
        scale: Callable[[torch.Tensor], torch.Tensor],
        res_scale: Callable[[torch.Tensor], torch.Tensor],
    ) -> torch.Tensor:
        if self.pre_norm:
            return res_scale(x) + self.drop_path(scale(self.dropout(branch(norm(x)))))
        return norm(x + self.dropout(branch(x)))

    def init_cache(self, batch: int, **kwargs: Any) -> Any:
        """The mixer's cache (cross-attention reads a fixed context and needs none)."""
        return self.mixer.init_cache(batch, **kwargs)

    def forward(
        self,
        x: torch.Tensor,
        *,
        cache: Any = None,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D) (or (B, C, H, W) for spatial mixers) -> the same shape.

        cache: the mixer's cache when decoding incrementally. mask: padding of x, for mixers that
        take one. context / context_mask: what the cross_mixer reads (an encoder's output)."""
        mixer_kwargs: dict[str, Any] = {}
        if cache is not None:
            mixer_kwargs["cache"] = cache
        if mask is not None:
            mixer_kwargs["mask"] = mask
        x = self._residual(
            x,
            self.mixer_norm,
            lambda h: self.mixer(h, **mixer_kwargs),
            self.mixer_scale,
            self.mixer_res_scale,
        )
        if self.cross_mixer is not None:
            if context is None:
                raise ValueError("this block has a cross_mixer: pass context (B, S, D)")
            x = self._residual(
                x,
                self.cross_norm,
                lambda h: self.cross_mixer(h, context, mask=context_mask),
                _identity,
                _identity,
            )
        if self.mlp is None:
            return x
        return self._residual(x, self.mlp_norm, self.mlp, self.mlp_scale, self.mlp_res_scale)


def prenorm_blocks(
    config: Any,
    make_mixer: Callable[[int], nn.Module],
    *,
    mlp: str | None = "swiglu",
    norm: str = "rmsnorm",
    mlp_bias: bool = False,
    dropout: float = 0.0,
) -> list[Block]:
    """The block list of most language models: config.n_layers pre-norm `Block`s of config.d_model.

    Layer i gets the token mixer make_mixer(i), then an `mlp` MLP (a `make_mlp` kind) of width
    config.d_ff with bias `mlp_bias` (None: mixer-only blocks), norms of kind `norm` with
    config.norm_eps, and `dropout` on every branch. Parts are built in the order mixer, MLP, block,
    layer after layer, as a written-out loop would build them (so seeded initialisations match)."""
    blocks = []
    for i in range(config.n_layers):
        mixer = make_mixer(i)
        mlp_module = None if mlp is None else make_mlp(mlp, config.d_model, config.d_ff, mlp_bias, dropout)
        blocks.append(
            Block(config.d_model, mixer, mlp_module, norm=norm, norm_eps=config.norm_eps, dropout=dropout)
        )
    return blocks


def transformer_block(
    d_model: int,
    n_heads: int,
    d_ff: int,
    *,
    n_kv_heads: int | None = None,
    head_dim: int | None = None,
    causal: bool = True,
    window: int | None = None,
    rope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    alibi: bool = False,
    norm: str = "rmsnorm",
    norm_eps: float = 1e-5,
    mlp: str = "swiglu",
    bias: bool = False,
    dropout: float = 0.0,
    fused_qkv: bool = False,
    manual: bool = False,
) -> Block:
    """The usual language-model block, Llama-style by default: a `Block` of (causal) multi-head
    attention and an MLP, pre-norm. A shorthand for writing the two parts out, nothing more."""
    attention = MultiHeadAttention(
        d_model,
        n_heads,
        n_kv_heads=n_kv_heads,
        head_dim=head_dim,
        bias=bias,
        dropout=dropout,
        causal=causal,
        window=window,
        rope=rope,
        alibi=alibi,
        fused_qkv=fused_qkv,
        manual=manual,
    )
    mlp_module = make_mlp(mlp, d_model, d_ff, bias, dropout)
    return Block(
        d_model, attention, mlp_module, norm=norm, norm_eps=norm_eps, norm_bias=bias, dropout=dropout
    )
