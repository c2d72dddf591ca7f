"""DeiT: data-efficient image transformers, a ViT trained with a distillation token.

Paper: "Training data-efficient image transformers & distillation through attention"
(Touvron, Cord, Douze, Massa, Sablayrolles & Jégou, 2020, arXiv:2012.12877).

The architecture is ViT plus, optionally, a second learned token: the *distillation token*. It
travels through the encoder beside [CLS]; its output feeds a second head trained to match a
teacher (a CNN, in the paper) while [CLS]'s head is trained on the true labels. At test time the
two heads' logits are averaged. `distillation_loss` implements the paper's hard and soft variants.

Presets: deit_ti16 / deit_s16 / deit_b16 (no distillation token: the same parameters as ViT-Ti/S/B)
and the `_distilled` variants, which add the token, one position embedding and the second head;
counts match timm's deit_*_patch16_224 and deit_*_distilled_patch16_224.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.drop_path import drop_path_rates
from bestiary.layers.patch_embed import PatchEmbed, check_image, patch_count, prepend_tokens
from bestiary.layers.vision_transformer import vit_block
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
    d_ff: int = 768
    distilled: bool = True  # add the distillation token and its head
    dropout: float = 0.0
    drop_path: float = 0.1  # DeiT's recipe relies on stochastic depth


#: our state-dict names -> transformers' DeiTForImageClassificationWithTeacher names (regex rules
#: applied in order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^cls_token$", "deit.embeddings.cls_token"),
    (r"^dist_token$", "deit.embeddings.distillation_token"),
    (r"^pos_embed$", "deit.embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "deit.embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.mixer_norm\.", r"deit.layers.\1.layernorm_before."),
    (r"^blocks\.(\d+)\.mlp_norm\.", r"deit.layers.\1.layernorm_after."),
    (r"^blocks\.(\d+)\.mixer\.out_proj\.", r"deit.layers.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.mixer\.", r"deit.layers.\1.attention."),  # q_proj, k_proj, v_proj
    (r"^blocks\.(\d+)\.mlp\.up\.", r"deit.layers.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.down\.", r"deit.layers.\1.mlp.fc2."),
    (r"^norm\.", "deit.layernorm."),
    (r"^head\.", "cls_classifier."),
    (r"^head_dist\.", "distillation_classifier."),
]


def _preset(d_model: int, n_heads: int, distilled: bool, params: int, name: str) -> Preset:
    return Preset(
        dict(
            d_model=d_model,
            n_layers=12,
            n_heads=n_heads,
            d_ff=4 * d_model,
            distilled=distilled,
            patch_size=16,
            image_size=224,
            num_classes=1000,
        ),
        params=params,
        source=f"timm {name} (paper Table 1: 5M / 22M / 86M; distilled +token +head)",
    )


@register(
    "deit",
    family="vision",
    config=Config,
    summary="DeiT: a ViT with a distillation token whose head learns from a teacher network.",
    paper="Training data-efficient image transformers & distillation through attention",
    year=2020,
    arxiv="2012.12877",
    input_kind="image",
    tiny=dict(image_size=16, patch_size=4, d_model=16, n_layers=2, n_heads=2, d_ff=32),
    presets={
        "deit_ti16": _preset(192, 3, False, 5_717_416, "deit_tiny_patch16_224"),
        "deit_s16": _preset(384, 6, False, 22_050_664, "deit_small_patch16_224"),
        "deit_b16": _preset(768, 12, False, 86_567_656, "deit_base_patch16_224"),
        "deit_ti16_distilled": _preset(192, 3, True, 5_910_800, "deit_tiny_distilled_patch16_224"),
        "deit_s16_distilled": _preset(384, 6, True, 22_436_432, "deit_small_distilled_patch16_224"),
        "deit_b16_distilled": _preset(768, 12, True, 87_338_192, "deit_base_distilled_patch16_224"),
    },
    outputs="logits (B, num_classes); the mean of the [CLS] and distillation heads when distilled",
)
class DeiT(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        n_patches = patch_count(config.image_size, config.patch_size)
        self.config = config
        d = self.num_features = config.d_model
        n_special = 2 if config.distilled else 1  # [CLS] (+ [DIST])
        self.patch_embed = PatchEmbed(config.in_channels, d, config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d)) if config.distilled else None
        self.pos_embed = nn.Parameter(torch.randn(1, n_patches + n_special, d) * 0.02)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.Sequential(
            *[
                vit_block(d, config.n_heads, config.d_ff, dropout=config.dropout, drop_path=rate)
                for rate in drop_path_rates(config.drop_path, config.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.head = nn.Linear(d, config.num_classes)
        self.head_dist = nn.Linear(d, config.num_classes) if config.distilled else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the final normalised tokens (B, n_special + N, D): [CLS], [DIST] (if
        distilled), then the patches."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        x = self.patch_embed(x)  # (B, N, D)
        special = [self.cls_token] if self.dist_token is None else [self.cls_token, self.dist_token]
        x = prepend_tokens(x, *special) + self.pos_embed  # (B, n_special + N, D)
        return self.norm(self.blocks(self.dropout(x)))

    def heads(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Tokens -> ([CLS] logits, distillation logits or None), each (B, num_classes)."""
        cls_logits = self.head(features[:, 0])
        dist_logits = self.head_dist(features[:, 1]) if self.head_dist is not None else None
        return cls_logits, dist_logits

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Tokens -> logits (B, num_classes): the mean of the two heads' logits when distilled
        (what the paper uses at test time)."""
        cls_logits, dist_logits = self.heads(features)
        return cls_logits if dist_logits is None else (cls_logits + dist_logits) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def distillation_loss(
    cls_logits: torch.Tensor,
    dist_logits: torch.Tensor,
    labels: torch.Tensor,
    teacher_logits: torch.Tensor,
    kind: str = "hard",
    alpha: float = 0.5,
    tau: float = 1.0,
) -> torch.Tensor:
    """The DeiT objective: [CLS] learns the labels, the distillation token learns the teacher.

    hard: (1 - alpha) CE(cls, y) + alpha CE(dist, argmax teacher)  (the paper uses alpha = 1/2)
    soft: (1 - alpha) CE(cls, y) + alpha tau^2 KL(softmax(teacher / tau) || softmax(dist / tau))
    """
    base = F.cross_entropy(cls_logits, labels)
    if kind == "hard":
        teacher = F.cross_entropy(dist_logits, teacher_logits.argmax(dim=-1))
    elif kind == "soft":
        teacher = F.kl_div(
            F.log_softmax(dist_logits / tau, dim=-1),
            F.log_softmax(teacher_logits / tau, dim=-1),
            reduction="batchmean",
            log_target=True,
        ) * (tau * tau)
    else:
        raise ValueError(f"kind must be 'hard' or 'soft', got {kind!r}")
    return (1 - alpha) * base + alpha * teacher
