"""Kolmogorov–Arnold Transformer: a ViT whose MLPs are group-rational KAN (GR-KAN) layers.

Paper: "Kolmogorov-Arnold Transformer" (Xingyi Yang & Xinchao Wang, 2024, arXiv:2409.10594).

Dropping spline KAN layers into a transformer is slow (B-spline recursions per edge) and hard to
initialise. KAT changes three things, all in `bestiary.layers.kan`:
1. rational functions P(x) / (1 + |Q(x)|) instead of B-splines (cheap, GPU friendly);
2. one rational function per *group* of channels instead of one per edge, followed by a linear map
   ("GR-KAN"), so the parameter count is that of an ordinary MLP plus a few coefficients per group;
3. initialisation from known activations: the first GR-KAN starts as the identity, the second as
   GELU, so at step 0 the block *is* a ViT MLP (Linear -> GELU -> Linear). (The paper also rescales
   the linear weights for variance preservation; we keep PyTorch's default Linear initialisation.)

Everything else is a pre-norm ViT (Dosovitskiy et al., 2020, arXiv:2010.11929): non-overlapping
patches -> linear embedding, a [CLS] token, learned position embeddings, L blocks of
x + attn(LN(x)) and x + GRKAN(LN(x)), a final LayerNorm and a linear head on the [CLS] token.

Input: images (B, in_channels, image_size, image_size) -> logits (B, num_classes). (KAT lives in the
`feedforward` family because the lesson is the KAN layer; it is a vision model in every other way.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.kan import GRKANLinear
from bestiary.layers.patch_embed import PatchEmbed, check_image, patch_count, prepend_tokens
from bestiary.layers.vision_transformer import vit_block
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32
    patch_size: int = 4
    d_model: int = 64
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 128  # hidden width of each GR-KAN MLP (the paper uses 4 * d_model)
    n_groups: int = option(8, min=1)  # channel groups sharing one rational function (the paper uses 8)
    num_classes: int = 10
    dropout: float = 0.0


class GRKANMLP(nn.Module):
    """The KAT feed-forward block: GR-KAN(identity init) d_model -> d_ff, GR-KAN(GELU init) d_ff -> d_model.

    `dropout` acts on the hidden layer; the block drops the output."""

    def __init__(self, d_model: int, d_ff: int, n_groups: int, dropout: float = 0.0):
        super().__init__()
        self.fc1 = GRKANLinear(d_model, d_ff, n_groups, init="identity")
        self.fc2 = GRKANLinear(d_ff, d_model, n_groups, init="gelu")
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.dropout(self.fc1(x)))


@register(
    "kat",
    family="feedforward",
    config=Config,
    summary="A ViT whose MLP blocks are group-rational Kolmogorov–Arnold (GR-KAN) layers.",
    paper="Kolmogorov-Arnold Transformer",
    year=2024,
    arxiv="2409.10594",
    input_kind="image",
    tiny=dict(
        in_channels=3,
        image_size=8,
        patch_size=4,
        d_model=16,
        n_layers=1,
        n_heads=2,
        d_ff=32,
        n_groups=4,
        num_classes=3,
    ),
    outputs="logits (B, num_classes)",
)
class KAT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        n_patches = patch_count(config.image_size, config.patch_size)
        for width in (config.d_model, config.d_ff):
            if width % config.n_groups:
                raise ValueError(
                    f"d_model and d_ff must be divisible by n_groups={config.n_groups}, got {width}"
                )
        self.config = config
        self.num_features = config.d_model
        # a conv with stride = kernel = patch_size is "cut into patches, flatten, Linear" in one op
        self.patch_embed = PatchEmbed(config.in_channels, config.d_model, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model))
        self.pos_embed = nn.Parameter(0.02 * torch.randn(1, n_patches + 1, config.d_model))
        self.dropout = nn.Dropout(config.dropout)
        # a pre-norm ViT block (bidirectional attention: every patch sees all) with a GR-KAN MLP
        self.blocks = nn.Sequential(
            *[
                vit_block(
                    config.d_model,
                    config.n_heads,
                    config.d_ff,
                    mlp=GRKANMLP(config.d_model, config.d_ff, config.n_groups, config.dropout),
                    norm_eps=1e-5,
                    dropout=config.dropout,
                )
                for _ in range(config.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the final normalised tokens (B, 1 + N, d_model), [CLS] first."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        x = self.patch_embed(x)  # (B, N, d_model), N = (H/p)(W/p) patches in raster order
        x = self.dropout(prepend_tokens(x, self.cls_token) + self.pos_embed)  # (B, N+1, d_model)
        return self.norm(self.blocks(x))  # (B, N+1, d_model)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Tokens (B, 1 + N, d_model) -> logits (B, num_classes), read from the [CLS] token."""
        return self.head(features[:, 0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
