"""DINOv3: a self-distilled ViT with 2-D rotary positions, registers and Gram anchoring.

Paper: "DINOv3" (Siméoni, Vo, Seitzer, Baldassarre, Oquab et al., Meta AI, 2025, arXiv:2508.10104).

What changes relative to DINOv2 (`bestiary.models.vision.dino_v2`):
- Positions: no learned position table. Each patch gets its centre coordinates normalised to
  [-1, 1] (so any resolution maps to the same range) and queries/keys are rotated by 2-D RoPE:
  a quarter of the frequency pairs turn with the row coordinate, another quarter with the column
  (the rest mirror them in the half-split layout), angle = 2*pi * coordinate * theta^(-4i/D).
  [CLS] and registers are not rotated. During training the coordinates are randomly shifted,
  stretched and rescaled ("RoPE box jittering") so the model does not overfit to one resolution.
- 4 register tokens ("storage tokens") by default; no bias on the key projection.
- Gram anchoring (`gram_anchoring_loss`): long training makes DINO's dense features degrade
  (patch similarities get noisy) while global features keep improving. DINOv3 regularises the
  *Gram matrix* of L2-normalised patch features — all pairwise patch cosine similarities —
  towards that of an earlier checkpoint (the "Gram teacher"), leaving the features themselves
  free to move: L_Gram = || X_S X_S^T - X_G X_G^T ||_F^2.

The DINO head (`bestiary.layers.dino`) and `dino_loss` (`bestiary.models.vision.dino_v2`) are
DINOv2's. Presets reproduce the released backbones (vits16 ...
vith16plus, patch 16, 4 registers; the 7B model is omitted); their counts equal transformers'
DINOv3ViTModel with the same configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.dino import DINO_TINY, DinoHead, DinoOutput
from bestiary.layers.drop_path import drop_path_rates
from bestiary.layers.patch_embed import PatchEmbed, check_image, prepend_tokens
from bestiary.layers.positions import rotate_half
from bestiary.layers.vision_transformer import vit_block
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32  # the side of the default example input: RoPE works at any multiple of patch_size
    patch_size: int = 4
    d_model: int = 192
    n_layers: int = 6
    n_heads: int = 3
    d_ff: int = 768
    mlp: str = option(
        "gelu", choices=("gelu", "swiglu")
    )  # "gelu" (Linear-GELU-Linear) or "swiglu" (the "+" models)
    n_registers: int = option(4, min=0)
    layer_scale: float = 1e-5
    rope_theta: float = 100.0  # RoPE frequency base
    rope_jitter: float = 2.0  # training-time coordinate rescale factor range [1/j, j]; 1 disables it
    norm_eps: float = 1e-5
    head_prototypes: int = option(1024, min=0)  # DINO head size; 0: backbone only
    head_hidden: int = option(512, min=1)
    head_bottleneck: int = option(128, min=1)
    drop_path: float = 0.0


#: our state-dict names -> transformers' DINOv3ViTModel names (regex rules applied in order); the
#: oracle test copies reference weights through them
HF_NAMES = [
    (r"^(cls_token|mask_token|register_tokens)$", r"embeddings.\1"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings."),
    (r"^blocks\.(\d+)\.mixer_norm\.", r"model.layer.\1.norm1."),
    (r"^blocks\.(\d+)\.mlp_norm\.", r"model.layer.\1.norm2."),
    (r"^blocks\.(\d+)\.mixer\.out_proj\.", r"model.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.mixer\.", r"model.layer.\1.attention."),  # q_proj, k_proj, v_proj
    (r"^blocks\.(\d+)\.mixer_scale\.scale$", r"model.layer.\1.layer_scale1.lambda1"),
    (r"^blocks\.(\d+)\.mlp_scale\.scale$", r"model.layer.\1.layer_scale2.lambda1"),
    (r"^blocks\.(\d+)\.mlp\.(gate|up|down)\.", r"model.layer.\1.mlp.\2_proj."),
    (r"^norm\.", "norm."),
]


def patch_coordinates(rows: int, cols: int, device=None) -> torch.Tensor:
    """(rows * cols, 2) patch-centre (y, x) coordinates in [-1, 1], row-major."""
    ys = (torch.arange(rows, device=device, dtype=torch.float32) + 0.5) / rows
    xs = (torch.arange(cols, device=device, dtype=torch.float32) + 0.5) / cols
    grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).flatten(0, 1)  # (N, 2) in [0, 1]
    return 2.0 * grid - 1.0


def rope_2d(coords: torch.Tensor, head_dim: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos, sin (N, head_dim) for 2-D RoPE in the half-split layout of `rotate_half`.

    Frequencies theta^(-4i/D), i < D/4; the first D/4 pairs rotate with y, the next D/4 with x.
    """
    if head_dim % 4:
        raise ValueError(f"2-D RoPE needs head_dim divisible by 4, got {head_dim}")
    inv_freq = theta ** -(
        torch.arange(0, head_dim // 4, device=coords.device, dtype=torch.float32) * 4 / head_dim
    )
    angles = 2 * math.pi * coords[:, :, None] * inv_freq  # (N, 2, D/4): y and x angles
    angles = angles.flatten(1).repeat(1, 2)  # (N, D): [y, x, y, x] — pair i is (i, i + D/2)
    return angles.cos(), angles.sin()


class PatchRope(nn.Module):
    """2-D RoPE on the patch tokens only: the `rope` of every block's `MultiHeadAttention`.

    `MultiHeadAttention` calls rope(x, positions) on q and k (B, H, T, Dh). Here the angles come
    from the 2-D patch coordinates, not from the 1-D token positions: the model calls `set_grid`
    with the patch grid of each batch (the one fact about positions that depends on the input, its
    resolution) before running the blocks, which all share this one module. The first T - N
    tokens ([CLS] + registers) keep their content unrotated. While training, `set_grid` also
    applies box jittering: one random rescale of the coordinates per batch. No parameters.
    """

    def __init__(self, head_dim: int, theta: float, jitter: float):
        super().__init__()
        self.head_dim, self.theta, self.jitter = head_dim, theta, jitter
        self.cos = self.sin = torch.empty(0, head_dim)  # (N, Dh) each, for the current grid

    def set_grid(self, rows: int, cols: int, device=None) -> None:
        coords = patch_coordinates(rows, cols, device)  # (N, 2)
        if self.training and self.jitter > 1.0:  # box jittering: one random rescale per batch
            log_range = math.log(self.jitter)
            coords = coords * torch.empty(1, device=device).uniform_(-log_range, log_range).exp()
        self.cos, self.sin = rope_2d(coords, self.head_dim, self.theta)

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        n_prefix = x.shape[2] - self.cos.shape[0]
        prefix, patches = x[:, :, :n_prefix], x[:, :, n_prefix:]  # (B, H, T-N, Dh), (B, H, N, Dh)
        cos, sin = self.cos.to(x.dtype), self.sin.to(x.dtype)
        return torch.cat([prefix, patches * cos + rotate_half(patches) * sin], dim=2)


def _preset(d: int, layers: int, heads: int, d_ff: int, mlp: str, params: int, name: str) -> Preset:
    """A released backbone (224 px, patch 16, 4 registers) without the training head."""
    return Preset(
        dict(
            d_model=d,
            n_layers=layers,
            n_heads=heads,
            d_ff=d_ff,
            mlp=mlp,
            n_registers=4,
            image_size=224,
            patch_size=16,
            head_prototypes=0,
        ),
        params=params,
        source=f"facebookresearch/dinov3 dinov3_{name} backbone; = transformers DINOv3ViTModel count",
    )


@register(
    "dino_v3",
    family="vision",
    config=Config,
    summary="DINOv3: self-distilled ViT with 2-D RoPE, registers and Gram anchoring of patch similarities.",
    paper="DINOv3",
    year=2025,
    arxiv="2508.10104",
    input_kind="image",
    tiny=DINO_TINY,
    presets={
        "dinov3_vits16": _preset(384, 12, 6, 1536, "gelu", 21_596_544, "vits16"),
        "dinov3_vits16plus": _preset(384, 12, 6, 1536, "swiglu", 28_692_864, "vits16plus"),
        "dinov3_vitb16": _preset(768, 12, 12, 3072, "gelu", 85_660_416, "vitb16"),
        "dinov3_vitl16": _preset(1024, 24, 16, 4096, "gelu", 303_129_600, "vitl16"),
        "dinov3_vith16plus": _preset(1280, 32, 20, 5120, "swiglu", 840_592_640, "vith16plus"),
    },
    outputs="DinoOutput(cls_token, patch_tokens, register_tokens, prototype_logits)",
)
class DinoV3(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.config = config
        self.num_features = c.d_model
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.d_model) * 0.02)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.d_model))
        self.register_tokens = (
            nn.Parameter(torch.randn(1, c.n_registers, c.d_model) * 0.02) if c.n_registers > 0 else None
        )
        self.patch_embed = PatchEmbed(c.in_channels, c.d_model, c.patch_size)
        self.rope = PatchRope(c.d_model // c.n_heads, c.rope_theta, c.rope_jitter)
        self.blocks = nn.Sequential(
            *[
                vit_block(
                    c.d_model,
                    c.n_heads,
                    c.d_ff,
                    mlp=c.mlp,
                    # no key bias: it only shifts every score of a query by the same amount, which
                    # softmax ignores; the query, value and output projections keep theirs
                    qkv_bias=(True, False, True),
                    rope=self.rope,
                    norm_eps=c.norm_eps,
                    drop_path=rate,
                    layer_scale=c.layer_scale,
                )
                for rate in drop_path_rates(c.drop_path, c.n_layers)
            ]
        )
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.head = (
            DinoHead(c.d_model, c.head_hidden, c.head_bottleneck, c.head_prototypes)
            if c.head_prototypes
            else None
        )

    def forward_features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, H, W), any multiple of patch_size -> the final normalised tokens
        (B, 1 + R + N, D): [CLS], R registers, N patches (before the DINO head).
        `mask` (B, N) boolean: patches to replace by the [MASK] token."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size)
        rows, cols = self.patch_embed.grid(x)  # patch grid: (H/p, W/p)
        tokens = self.patch_embed(x)  # (B, N, D)
        if mask is not None:
            tokens = torch.where(mask.unsqueeze(-1), self.mask_token.to(tokens.dtype), tokens)
        prefix = [self.cls_token] if self.register_tokens is None else [self.cls_token, self.register_tokens]
        tokens = prepend_tokens(tokens, *prefix)  # (B, 1 + R + N, D)
        self.rope.set_grid(rows, cols, x.device)
        return self.norm(self.blocks(tokens))  # (B, 1 + R + N, D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> DinoOutput:
        tokens = self.forward_features(x, mask)  # (B, 1 + R + N, D)
        return DinoOutput.from_tokens(tokens, self.config.n_registers, self.head)  # DINO head on [CLS]


def gram_anchoring_loss(student_patches: torch.Tensor, teacher_patches: torch.Tensor) -> torch.Tensor:
    """|| X_S X_S^T - X_G X_G^T ||_F^2 on L2-normalised patch features (B, N, D), averaged.

    X X^T is the (N, N) matrix of patch-to-patch cosine similarities. Matching it to an earlier
    checkpoint's (the Gram teacher, no gradient) keeps the *structure* of the dense features —
    which patches look alike — without pinning the features themselves. We divide the squared
    Frobenius norm by N^2 (a mean over matrix entries) and average over the batch, so the scale
    does not depend on the resolution.
    """
    if student_patches.shape != teacher_patches.shape:
        raise ValueError(
            f"student and teacher patch features must have the same shape (B, N, D), "
            f"got {tuple(student_patches.shape)} and {tuple(teacher_patches.shape)}"
        )
    xs = F.normalize(student_patches, dim=-1)
    xg = F.normalize(teacher_patches.detach(), dim=-1)
    gram_s = xs @ xs.transpose(1, 2)  # (B, N, N)
    gram_g = xg @ xg.transpose(1, 2)  # (B, N, N)
    return (gram_s - gram_g).pow(2).mean()
