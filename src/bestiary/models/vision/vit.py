"""Vision Transformer (ViT): an image as a sequence of patches, fed to a plain transformer encoder.

Paper: "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"
(Dosovitskiy et al., 2020, arXiv:2010.11929).

Pipeline: cut the image into p x p patches -> project each to d_model (a strided conv) -> prepend a
learned [CLS] token -> add learned position embeddings -> n_layers pre-norm encoder blocks ->
LayerNorm -> classify from the [CLS] token.

The presets match torchvision's ViT models (and timm's, which have the same parameters) exactly:
qkv with bias, LayerNorm eps 1e-6, a single Linear head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.drop_path import drop_path_rates
from bestiary.layers.patch_embed import PatchEmbed, check_image, patch_count, prepend_tokens
from bestiary.layers.vision_transformer import vit_block
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32
    patch_size: int = 4
    num_classes: int = 10
    d_model: int = 192
    n_layers: int = 6
    n_heads: int = 3
    d_ff: int = 768  # 4 x d_model in every published ViT
    dropout: float = 0.0
    drop_path: float = 0.0  # stochastic depth at the last block (linear schedule from 0)
    qkv_bias: bool = True
    pool: str = option(
        "cls", choices=("cls", "mean")
    )  # "cls": classify from the [CLS] token; "mean": average the patch tokens
    norm_eps: float = 1e-6  # LayerNorm epsilon


#: our state-dict names -> transformers' ViTForImageClassification names (regex rules applied in
#: order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^cls_token$", "vit.embeddings.cls_token"),
    (r"^pos_embed$", "vit.embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "vit.embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.mixer_norm\.", r"vit.layers.\1.layernorm_before."),
    (r"^blocks\.(\d+)\.mlp_norm\.", r"vit.layers.\1.layernorm_after."),
    (r"^blocks\.(\d+)\.mixer\.out_proj\.", r"vit.layers.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.mixer\.", r"vit.layers.\1.attention."),  # q_proj, k_proj, v_proj
    (r"^blocks\.(\d+)\.mlp\.up\.", r"vit.layers.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.down\.", r"vit.layers.\1.mlp.fc2."),
    (r"^norm\.", "vit.layernorm."),
    (r"^head\.", "classifier."),
]


def vit_preset(d_model: int, n_layers: int, n_heads: int, patch: int, params: int, source: str) -> Preset:
    return Preset(
        dict(
            d_model=d_model,
            n_layers=n_layers,
            n_heads=n_heads,
            d_ff=4 * d_model,
            patch_size=patch,
            image_size=224,
            num_classes=1000,
        ),
        params=params,
        source=source,
    )


@register(
    "vit",
    family="vision",
    config=Config,
    summary="Vision Transformer: patches + [CLS] token + position embeddings through a transformer encoder.",
    paper="An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale",
    year=2020,
    arxiv="2010.11929",
    input_kind="image",
    tiny=dict(image_size=16, patch_size=4, d_model=16, n_layers=2, n_heads=2, d_ff=32),
    presets={
        "vit_ti16": vit_preset(192, 12, 3, 16, 5_717_416, "timm vit_tiny_patch16_224"),
        "vit_s16": vit_preset(384, 12, 6, 16, 22_050_664, "timm vit_small_patch16_224"),
        "vit_b16": vit_preset(768, 12, 12, 16, 86_567_656, "torchvision.models.vit_b_16 docs (num_params)"),
        "vit_b32": vit_preset(768, 12, 12, 32, 88_224_232, "torchvision.models.vit_b_32 docs (num_params)"),
        "vit_l16": vit_preset(1024, 24, 16, 16, 304_326_632, "torchvision.models.vit_l_16 docs (num_params)"),
        "vit_l32": vit_preset(1024, 24, 16, 32, 306_535_400, "torchvision.models.vit_l_32 docs (num_params)"),
        "vit_h14": vit_preset(1280, 32, 16, 14, 632_045_800, "torchvision.models.vit_h_14 docs (num_params)"),
    },
    outputs="logits (B, num_classes)",
)
class ViT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        n_patches = patch_count(config.image_size, config.patch_size)
        if config.pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', got {config.pool!r}")
        self.config = config
        self.num_features = config.d_model
        self.patch_embed = PatchEmbed(config.in_channels, config.d_model, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.d_model))
        # one learned vector per position (patches + [CLS]): attention itself is order-blind
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + 1, config.d_model) * 0.02)
        self.dropout = nn.Dropout(config.dropout)
        rates = drop_path_rates(config.drop_path, config.n_layers)
        self.blocks = nn.Sequential(
            *[
                vit_block(
                    config.d_model,
                    config.n_heads,
                    config.d_ff,
                    qkv_bias=config.qkv_bias,
                    norm_eps=config.norm_eps,
                    dropout=config.dropout,
                    drop_path=rate,
                )
                for rate in rates
            ]
        )
        self.norm = nn.LayerNorm(config.d_model, eps=config.norm_eps)
        self.head = nn.Linear(config.d_model, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the final normalised tokens (B, 1 + N, D), [CLS] first."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        x = self.patch_embed(x)  # (B, N, D)
        x = prepend_tokens(x, self.cls_token) + self.pos_embed  # (B, 1 + N, D), [CLS] first
        return self.norm(self.blocks(self.dropout(x)))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Tokens (B, 1 + N, D) -> logits (B, num_classes), from [CLS] or the mean patch token."""
        pooled = features[:, 0] if self.config.pool == "cls" else features[:, 1:].mean(dim=1)  # (B, D)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
