"""DINOv2: a ViT trained by self-distillation, with register tokens and the DINO projection head.

Papers: "DINOv2: Learning Robust Visual Features without Supervision" (Oquab et al., 2023,
arXiv:2304.07193); registers from "Vision Transformers Need Registers" (Darcet, Oquab, Mairal &
Bojanowski, 2023, arXiv:2309.16588); the DINO head and loss from "Emerging Properties in
Self-Supervised Vision Transformers" (Caron et al., 2021, arXiv:2104.14294).

Backbone: a ViT with LayerScale (gamma = 1e-5 at init), a learned [MASK] token (iBOT's masked
patches) and `n_registers` extra learned tokens. Registers carry no position embedding and are
thrown away at the output: they give the network a scratch space for global computations that it
would otherwise write into low-information background patches (the "artifact" attention maps).

Head: MLP (d_model -> hidden -> hidden -> bottleneck), L2-normalise, then a bias-free linear layer
with unit-norm rows, i.e. cosine similarities to `head_prototypes` learned prototypes. DINO trains
a student to predict the (centred, sharpened) prototype distribution of an EMA teacher on another
view of the image: `dino_loss` below.

Presets reproduce the released backbones (dinov2_vits14 ... vitg14 and the `_reg` variants with
4 registers; 518 px, patch 14) without the training head; their counts equal transformers'
Dinov2Model / Dinov2WithRegistersModel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.dino import DINO_TINY, DinoHead, DinoOutput
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
    d_model: int = 192
    n_layers: int = 6
    n_heads: int = 3
    d_ff: int = 768
    mlp: str = option("gelu", choices=("gelu", "swiglu"))  # "gelu" (Linear-GELU-Linear) or "swiglu" (ViT-g)
    n_registers: int = option(4, min=0)
    layer_scale: float = 1e-5
    head_prototypes: int = option(1024, min=0)  # K prototypes of the DINO head; 0: no head (backbone only)
    head_hidden: int = option(512, min=1)  # 2048 in the paper
    head_bottleneck: int = option(128, min=1)  # 256 in the paper
    drop_path: float = 0.0


#: our state-dict names -> transformers' Dinov2Model / Dinov2WithRegistersModel names (regex rules
#: applied in order); the oracle test copies reference weights through them
HF_NAMES = [
    (r"^(cls_token|mask_token|register_tokens)$", r"embeddings.\1"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.mixer_norm\.", r"encoder.layer.\1.norm1."),
    (r"^blocks\.(\d+)\.mlp_norm\.", r"encoder.layer.\1.norm2."),
    (r"^blocks\.(\d+)\.mixer\.out_proj\.", r"encoder.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.mixer\.", r"encoder.layer.\1.attention."),  # q_proj, k_proj, v_proj
    (r"^blocks\.(\d+)\.mixer_scale\.scale$", r"encoder.layer.\1.layer_scale1.lambda1"),
    (r"^blocks\.(\d+)\.mlp_scale\.scale$", r"encoder.layer.\1.layer_scale2.lambda1"),
    (r"^blocks\.(\d+)\.mlp\.up\.", r"encoder.layer.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.down\.", r"encoder.layer.\1.mlp.fc2."),
    (r"^norm\.", "layernorm."),
]


def _preset(
    d: int, layers: int, heads: int, d_ff: int, mlp: str, regs: int, params: int, name: str
) -> Preset:
    """A released backbone (518 px, patch 14) without the training head."""
    return Preset(
        dict(
            d_model=d,
            n_layers=layers,
            n_heads=heads,
            d_ff=d_ff,
            mlp=mlp,
            n_registers=regs,
            image_size=518,
            patch_size=14,
            head_prototypes=0,
        ),
        params=params,
        source=f"facebookresearch/dinov2 {name} backbone; = transformers Dinov2(WithRegisters)Model count",
    )


@register(
    "dino_v2",
    family="vision",
    config=Config,
    summary="DINOv2: self-distilled ViT with LayerScale, register tokens and a prototype (DINO) head.",
    paper="DINOv2: Learning Robust Visual Features without Supervision",
    year=2023,
    arxiv="2304.07193",
    input_kind="image",
    tiny=DINO_TINY,
    presets={
        "dinov2_vits14": _preset(384, 12, 6, 1536, "gelu", 0, 22_056_576, "dinov2_vits14"),
        "dinov2_vitb14": _preset(768, 12, 12, 3072, "gelu", 0, 86_580_480, "dinov2_vitb14"),
        "dinov2_vitl14": _preset(1024, 24, 16, 4096, "gelu", 0, 304_368_640, "dinov2_vitl14"),
        "dinov2_vitg14": _preset(1536, 40, 24, 4096, "swiglu", 0, 1_136_480_768, "dinov2_vitg14"),
        "dinov2_vits14_reg": _preset(384, 12, 6, 1536, "gelu", 4, 22_058_112, "dinov2_vits14_reg"),
        "dinov2_vitb14_reg": _preset(768, 12, 12, 3072, "gelu", 4, 86_583_552, "dinov2_vitb14_reg"),
    },
    outputs="DinoOutput(cls_token, patch_tokens, register_tokens, prototype_logits)",
)
class DinoV2(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        n_patches = patch_count(c.image_size, c.patch_size)
        self.config = config
        self.num_features = c.d_model
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.mask_token = nn.Parameter(torch.zeros(1, c.d_model))  # replaces masked patches (iBOT loss)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + n_patches, c.d_model) * 0.02)  # [CLS] + patches
        self.register_tokens = (
            nn.Parameter(torch.randn(1, c.n_registers, c.d_model) * 0.02) if c.n_registers > 0 else None
        )
        self.patch_embed = PatchEmbed(c.in_channels, c.d_model, c.patch_size)
        self.blocks = nn.Sequential(
            *[
                vit_block(c.d_model, c.n_heads, c.d_ff, mlp=c.mlp, drop_path=rate, layer_scale=c.layer_scale)
                for rate in drop_path_rates(c.drop_path, c.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(c.d_model, eps=1e-6)
        self.head = (
            DinoHead(c.d_model, c.head_hidden, c.head_bottleneck, c.head_prototypes)
            if c.head_prototypes
            else None
        )

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W) -> the final normalised tokens (B, 1 + R + N, D): [CLS], R registers,
        N patches (before the DINO head). `mask` (B, N) boolean: patches to replace by [MASK]."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        tokens = self.patch_embed(x)  # (B, N, D)
        if mask is not None:
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        tokens = prepend_tokens(tokens, self.cls_token) + self.pos_embed  # (B, 1 + N, D)
        if self.register_tokens is not None:  # after the position embeddings: registers have no position
            registers = self.register_tokens.expand(tokens.shape[0], -1, -1)  # (B, R, D)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)  # (B, 1 + R + N, D)
        return self.norm(self.blocks(tokens))  # (B, 1 + R + N, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> DinoOutput:
        """x (B, C, H, W); `mask` (B, N) boolean: patches to replace by the [MASK] token."""
        tokens = self.forward_features(x, mask)  # (B, 1 + R + N, D)
        return DinoOutput.from_tokens(tokens, self.config.n_registers, self.head)  # DINO head on [CLS]


def dino_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    center: torch.Tensor,
    student_temp: float = 0.1,
    teacher_temp: float = 0.04,
) -> torch.Tensor:
    """Cross-entropy between the teacher's centred, sharpened distribution and the student's.

    Centring (subtracting a running mean of teacher logits) stops one prototype from winning for
    every image; sharpening (a low teacher temperature) stops the uniform-distribution collapse.
    The teacher is not trained by this loss (it is an EMA of the student), hence the detach.
    """
    targets = F.softmax((teacher_logits.detach() - center) / teacher_temp, dim=-1)
    return -(targets * F.log_softmax(student_logits / student_temp, dim=-1)).sum(dim=-1).mean()


@torch.no_grad()
def update_center(center: torch.Tensor, teacher_logits: torch.Tensor, momentum: float = 0.9) -> torch.Tensor:
    """EMA of the batch-mean teacher logits, used by `dino_loss`."""
    return center * momentum + teacher_logits.mean(dim=0, keepdim=True) * (1 - momentum)
