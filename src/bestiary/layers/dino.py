"""What DINOv2 and DINOv3 share around their backbones: the prototype head and the output split.

The DINO head is from "Emerging Properties in Self-Supervised Vision Transformers" (Caron et al.,
2021, arXiv:2104.14294): an MLP (d_model -> hidden -> hidden -> bottleneck), L2 normalisation,
then a bias-free linear layer with unit-norm rows, i.e. cosine similarities to K learned
prototypes. A student is trained to predict an EMA teacher's (centred, sharpened) distribution
over the prototypes (`bestiary.models.vision.dino_v2.dino_loss`).

Both backbones end with tokens laid out [CLS], R registers, N patches; `DinoOutput.from_tokens`
names the three parts ("Vision Transformers Need Registers", Darcet et al., 2023, arXiv:2309.16588).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

#: the tiny test configuration of both DINO backbones (dino_v2, dino_v3): 16 px images in 4 px
#: patches, two registers, a small head
DINO_TINY = dict(
    image_size=16,
    patch_size=4,
    d_model=16,
    n_layers=2,
    n_heads=2,
    d_ff=32,
    n_registers=2,
    head_prototypes=32,
    head_hidden=32,
    head_bottleneck=8,
)


@dataclass
class DinoOutput:
    cls_token: torch.Tensor  # (B, D) normalised [CLS] output: the image embedding
    patch_tokens: torch.Tensor  # (B, N, D) normalised patch outputs: dense features
    register_tokens: torch.Tensor | None  # (B, R, D), or None without registers
    prototype_logits: torch.Tensor | None  # (B, K) DINO head on [CLS], or None without a head

    @classmethod
    def from_tokens(cls, tokens: torch.Tensor, n_registers: int, head: nn.Module | None) -> DinoOutput:
        """Split the final tokens (B, 1 + R + N, D) ([CLS], R registers, N patches) and run the
        DINO head (if any) on [CLS]."""
        cls_token = tokens[:, 0]  # (B, D)
        return cls(
            cls_token=cls_token,
            patch_tokens=tokens[:, 1 + n_registers :],  # (B, N, D)
            register_tokens=tokens[:, 1 : 1 + n_registers] if n_registers else None,  # (B, R, D)
            prototype_logits=head(cls_token) if head is not None else None,
        )


class DinoHead(nn.Module):
    """MLP -> L2 normalise -> cosine similarity to K unit-norm prototypes. (B, D) -> (B, K)."""

    def __init__(self, d_model: int, hidden: int, bottleneck: int, prototypes: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(d_model, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        self.prototypes = nn.Linear(bottleneck, prototypes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(self.mlp(x), dim=-1)  # (B, bottleneck), unit length
        # unit-norm prototypes (the paper's weight-normalised layer with its gain frozen at 1)
        return F.linear(x, F.normalize(self.prototypes.weight, dim=-1))
