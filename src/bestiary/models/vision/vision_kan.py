"""Vision KAN: a Vision Transformer whose MLP sub-layers are Kolmogorov-Arnold (KAN) layers.

Papers: "ViKANformer: Embedding Kolmogorov Arnold Networks in Vision Transformers for
Pattern-Based Learning" (S & M, 2025, arXiv:2503.01124), which replaces the feed-forward layers of
a ViT with KAN layers; the KAN layer is from "KAN: Kolmogorov-Arnold Networks" (Liu et al., 2024,
arXiv:2404.19756).

An MLP puts fixed activations on the nodes and learns linear weights on the edges; a KAN layer
learns a function on every edge (a SiLU "base" term plus a B-spline, `bestiary.layers.kan.KANLinear`)
and only sums at the nodes. Here each block's feed-forward is KANLinear(d_model -> d_ff) ->
KANLinear(d_ff -> d_model) with no separate activation: the edge functions are the nonlinearity.
Attention, patch embedding, [CLS] token and head are those of ViT (the same
`bestiary.layers.vision_transformer.vit_block`, with the KAN feed-forward as its MLP).
The LayerNorm in front of the feed-forward keeps its inputs near N(0, 1), inside the spline grid
(`grid_range`); outside it, only the SiLU base term acts.

Spline layers cost (grid_size + spline_order + 2) times the parameters of a Linear layer, so
keep d_ff small. No published parameter counts exist for an ImageNet model of this kind.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.kan import KANLinear
from bestiary.layers.patch_embed import PatchEmbed, check_image, patch_count, prepend_tokens
from bestiary.layers.vision_transformer import vit_block
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32
    patch_size: int = 4
    num_classes: int = 10
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 64  # hidden width of the KAN feed-forward (kept small: each edge is a spline)
    grid_size: int = option(5, min=1)  # spline intervals per edge
    spline_order: int = option(3, min=1)  # cubic B-splines
    grid_range: float = 3.0  # splines cover [-grid_range, grid_range]
    dropout: float = 0.0


class KANFeedForward(nn.Sequential):
    """KANLinear(d_model -> d_ff) -> KANLinear(d_ff -> d_model), applied to every token (the block
    applies the dropout to its output)."""

    def __init__(self, config: Config):
        kw = dict(
            grid_size=config.grid_size,
            spline_order=config.spline_order,
            grid_range=(-config.grid_range, config.grid_range),
        )
        super().__init__(
            KANLinear(config.d_model, config.d_ff, **kw),
            KANLinear(config.d_ff, config.d_model, **kw),
        )


@register(
    "vision_kan",
    family="vision",
    config=Config,
    summary="Vision KAN: a ViT with B-spline Kolmogorov-Arnold layers in place of its MLPs.",
    paper="ViKANformer: Embedding Kolmogorov Arnold Networks in Vision Transformers for Pattern-Based Learning",
    year=2025,
    arxiv="2503.01124",
    input_kind="image",
    tiny=dict(image_size=16, patch_size=4, d_model=16, n_layers=2, n_heads=2, d_ff=8, grid_size=3),
    outputs="logits (B, num_classes)",
)
class VisionKAN(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        n_patches = patch_count(c.image_size, c.patch_size)
        self.config = config
        self.num_features = c.d_model
        self.patch_embed = PatchEmbed(c.in_channels, c.d_model, c.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, c.d_model) * 0.02)
        self.blocks = nn.Sequential(
            *[
                vit_block(c.d_model, c.n_heads, c.d_ff, mlp=KANFeedForward(c), dropout=c.dropout)
                for _ in range(c.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(c.d_model, eps=1e-6)
        self.head = nn.Linear(c.d_model, c.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the final normalised tokens (B, 1 + N, D), [CLS] first."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        x = self.patch_embed(x)  # (B, N, D)
        x = prepend_tokens(x, self.cls_token) + self.pos_embed  # (B, 1 + N, D)
        return self.norm(self.blocks(x))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Tokens (B, 1 + N, D) -> logits (B, num_classes), from the [CLS] token."""
        return self.head(features[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
