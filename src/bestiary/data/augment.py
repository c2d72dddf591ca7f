"""Batched image augmentation on tensors, on the tensors' own device, without torchvision.

Every function takes a float batch ``(B, C, H, W)`` and a ``torch.Generator`` and returns a new batch
of the same shape; each image gets its own random draw, and the same generator seed always gives the
same result (on the same device). No Python loop over images: one batch costs a handful of tensor ops.

- ``random_crop(x, padding, gen)``: pad by ``padding`` pixels (zeros), then cut a random H x W window
  -- a random shift of up to ``padding`` pixels in each direction (the CIFAR/ResNet recipe, He et al.
  2015, arXiv:1512.03385, section 4.2).
- ``random_hflip(x, gen, p=0.5)``: mirror left-right with probability ``p``.
- ``cutout(x, size, gen)``: zero a ``size`` x ``size`` square at a random centre, clipped at the borders
  ("Improved Regularization of Convolutional Neural Networks with Cutout", DeVries & Taylor, 2017,
  arXiv:1708.04552).
- ``normalize(x, mean, std)``: per-channel ``(x - mean) / std``.
- ``Augment``: the three chained, with one generator -- ``aug(x)`` draws fresh randomness each call.

Why augment on the batch and not per image in a ``Dataset``: a ``DataLoader`` calls Python once per
image; here the crop is one gather, the flip one ``where``, the cutout one mask product, for the whole
batch, and on a GPU they run where the batch already is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["Augment", "cutout", "normalize", "random_crop", "random_hflip"]


def _check_batch(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a float tensor (convert uint8 with x.float() / 255), got {x.dtype}")


def _check_generator(gen: torch.Generator, x: torch.Tensor) -> None:
    if not isinstance(gen, torch.Generator):
        raise TypeError(f"gen must be a torch.Generator, got {type(gen).__name__}")
    if gen.device.type != x.device.type:
        raise ValueError(
            f"gen lives on {gen.device} but the batch on {x.device}: make it with "
            f"torch.Generator(device=x.device).manual_seed(seed)"
        )


def random_crop(x: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Zero-pad each image by ``padding`` on every side, then crop a random H x W window.

    Output pixel (i, j) of image b is padded pixel (i + dy_b, j + dx_b), with dy_b, dx_b drawn
    uniformly from {0, ..., 2 * padding}; dy = dx = padding gives back the original image.
    """
    _check_batch(x)
    _check_generator(gen, x)
    if not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an int >= 0, got {padding!r}")
    if padding == 0:
        return x.clone()
    B, C, H, W = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))  # (B, C, H + 2p, W + 2p)
    dy = torch.randint(0, 2 * padding + 1, (B,), generator=gen, device=x.device)  # (B,)
    dx = torch.randint(0, 2 * padding + 1, (B,), generator=gen, device=x.device)  # (B,)
    # Per-image row and column indices of the window: rows[b, i] = dy[b] + i.
    rows = dy[:, None] + torch.arange(H, device=x.device)  # (B, H)
    cols = dx[:, None] + torch.arange(W, device=x.device)  # (B, W)
    # Gather rows, then columns: two index_select-like gathers cost the same as one copy of the batch.
    out = padded.gather(2, rows[:, None, :, None].expand(B, C, H, W + 2 * padding))  # (B, C, H, W + 2p)
    return out.gather(3, cols[:, None, None, :].expand(B, C, H, W))  # (B, C, H, W)


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each image left-right with probability ``p`` (independently per image)."""
    _check_batch(x)
    _check_generator(gen, x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p!r}")
    flip = torch.rand(x.shape[0], generator=gen, device=x.device) < p  # (B,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def cutout(x: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square in each image (all channels), at a uniformly random centre.

    The centre (cy, cx) ranges over every pixel, so near a border part of the square falls outside the
    image and is clipped: rows max(0, cy - size//2) .. min(H, cy - size//2 + size) - 1 (same for
    columns). DeVries & Taylor found that allowing this clipping works better than keeping the square
    inside: the model also sees images with only a little of them hidden.
    """
    _check_batch(x)
    _check_generator(gen, x)
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"size must be an int >= 0, got {size!r}")
    B, _, H, W = x.shape
    if size == 0:
        return x.clone()
    cy = torch.randint(0, H, (B,), generator=gen, device=x.device)  # (B,)
    cx = torch.randint(0, W, (B,), generator=gen, device=x.device)  # (B,)
    top, left = cy - size // 2, cx - size // 2  # may be negative: the clipping is implicit below
    ys = torch.arange(H, device=x.device)
    xs = torch.arange(W, device=x.device)
    in_rows = (ys[None, :] >= top[:, None]) & (ys[None, :] < top[:, None] + size)  # (B, H)
    in_cols = (xs[None, :] >= left[:, None]) & (xs[None, :] < left[:, None] + size)  # (B, W)
    hole = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    return x.masked_fill(hole[:, None], 0.0)


def normalize(x: torch.Tensor, mean: float | Sequence[float], std: float | Sequence[float]) -> torch.Tensor:
    """Per-channel ``(x - mean) / std``; ``mean`` and ``std`` are one number or one per channel."""
    _check_batch(x)
    C = x.shape[1]
    m = torch.as_tensor(mean, dtype=x.dtype, device=x.device).reshape(-1)
    s = torch.as_tensor(std, dtype=x.dtype, device=x.device).reshape(-1)
    for name, t in (("mean", m), ("std", s)):
        if t.numel() not in (1, C):
            raise ValueError(f"{name} must be one value or {C} (one per channel), got {t.numel()}")
    if (s <= 0).any():
        raise ValueError(f"std must be > 0, got {s.tolist()}")
    return (x - m.reshape(1, -1, 1, 1)) / s.reshape(1, -1, 1, 1)  # broadcast over (B, C, H, W)


class Augment:
    """crop (``padding``) -> horizontal flip (``flip_p``) -> cutout (``cutout_size``), one generator.

    Set a value to 0 to skip that step. Fashion-MNIST has left/right-symmetric classes, so flipping is
    safe there; for digits use ``flip_p=0`` (a mirrored 3 is not a 3).

        aug = Augment(padding=2, flip_p=0.5, cutout_size=8, seed=0, device=x.device)
        xb = aug(xb)   # a new random draw every call; the sequence of draws depends only on seed
    """

    def __init__(
        self,
        padding: int = 2,
        flip_p: float = 0.5,
        cutout_size: int = 0,
        *,
        seed: int = 0,
        device: torch.device | str = "cpu",
    ) -> None:
        if not isinstance(padding, int) or padding < 0:
            raise ValueError(f"padding must be an int >= 0, got {padding!r}")
        if not 0.0 <= flip_p <= 1.0:
            raise ValueError(f"flip_p must be in [0, 1], got {flip_p!r}")
        if not isinstance(cutout_size, int) or cutout_size < 0:
            raise ValueError(f"cutout_size must be an int >= 0, got {cutout_size!r}")
        self.padding, self.flip_p, self.cutout_size = padding, flip_p, cutout_size
        self.gen = torch.Generator(device=device).manual_seed(seed)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding:
            x = random_crop(x, self.padding, self.gen)
        if self.flip_p:
            x = random_hflip(x, self.gen, self.flip_p)
        if self.cutout_size:
            x = cutout(x, self.cutout_size, self.gen)
        return x

    def __repr__(self) -> str:
        return f"Augment(padding={self.padding}, flip_p={self.flip_p}, cutout_size={self.cutout_size})"
