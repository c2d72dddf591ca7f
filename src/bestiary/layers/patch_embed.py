"""Image input checks and patch embedding: cut an image into patches, project each to a vector.

"An Image is Worth 16x16 Words" (Dosovitskiy et al., 2020, arXiv:2010.11929). A Conv2d with
kernel = stride = patch size is exactly "flatten each non-overlapping patch, then apply one shared
Linear layer": each output pixel sees one patch and no two patches overlap.
"""

from __future__ import annotations

import torch
from torch import nn

from bestiary.layers.checks import ShapeError, check_shape


def check_image(
    x: torch.Tensor,
    in_channels: int,
    *,
    multiple_of: int = 1,
    image_size: int | None = None,
    name: str = "image",
) -> None:
    """Check an image batch (B, C, H, W): C must be `in_channels`; H and W must be multiples of
    `multiple_of` (the patch size, or the total downsampling factor); if `image_size` is given
    (models with learned position embeddings), H and W must equal it. Pixels must be floats: an
    integer image (uint8 0..255) would fail inside the first convolution, or worse, be silently
    scaled wrong."""
    if isinstance(x, torch.Tensor) and not x.is_floating_point():
        raise TypeError(
            f"expected {name} as floating-point pixels, got {x.dtype}: convert it first, e.g. "
            "x.float() / 255 (bestiary.vision.image_batch does this for uint8 images)"
        )
    if image_size is not None:
        check_shape(x, "B C H W", name=name, C=in_channels, H=image_size, W=image_size)
    else:
        check_shape(x, "B C H W", name=name, C=in_channels)
    height, width = x.shape[-2:]
    if height % multiple_of or width % multiple_of:
        raise ShapeError(
            f"expected {name} of shape (B, C={in_channels}, H, W) with H and W multiples of "
            f"{multiple_of}, got {tuple(x.shape)}"
        )


def patch_count(image_size: int, patch_size: int) -> int:
    """Number of patches N = (image_size / patch_size)^2 of a square image, for models whose
    parameters depend on it (learned position embeddings, Mixer's token MLP). The image must be
    cut into whole patches: a ValueError otherwise."""
    if image_size % patch_size:
        raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
    return (image_size // patch_size) ** 2


def prepend_tokens(x: torch.Tensor, *tokens: torch.Tensor) -> torch.Tensor:
    """Put learned tokens ([CLS], distillation, registers; each (1, n_i, D)) in front of every
    sequence of the batch x (B, N, D), in the order given: -> (B, sum n_i + N, D)."""
    batch = x.shape[0]
    return torch.cat([*(t.expand(batch, -1, -1) for t in tokens), x], dim=1)


class PatchEmbed(nn.Module):
    """(B, C, H, W) -> (B, N, d_model) with N = (H/p)(W/p) patches, in row-major order.

    `norm=True` adds a LayerNorm after the projection (Swin does this; ViT does not).
    """

    def __init__(self, in_channels: int, d_model: int, patch_size: int, norm: bool = False):
        super().__init__()
        self.in_channels, self.patch_size = in_channels, patch_size
        self.proj = nn.Conv2d(in_channels, d_model, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(d_model) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.in_channels, multiple_of=self.patch_size)
        x = self.proj(x)  # (B, D, H/p, W/p)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        return self.norm(x)

    def grid(self, x: torch.Tensor) -> tuple[int, int]:
        """(rows, cols) of the patch grid for an image `x`."""
        return x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
