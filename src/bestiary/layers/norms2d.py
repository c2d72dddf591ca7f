"""Normalisation layers for feature maps (B, C, H, W): BatchNorm, LayerNorm, InstanceNorm, GroupNorm.

For a feature map (B, C, H, W) the four norms differ only in *which* values share a mean and variance:

    BatchNorm     over (B, H, W) for each channel      -- depends on the other images in the batch
    LayerNorm     over (C, H, W) for each image        -- GroupNorm with 1 group
    InstanceNorm  over (H, W) for each image, channel  -- GroupNorm with C groups
    GroupNorm     over (C/G, H, W) for each image, group of C/G channels

"Group Normalization" (Wu & He, 2018, arXiv:1803.08494) frames all four this way; we build LayerNorm
and InstanceNorm as GroupNorm(1, C) and GroupNorm(C, C) with a learned per-channel scale and shift,
exactly as that paper does, so that only the grouping changes between the variants.

A model chooses its norm when it is built (`bestiary.build("resnet", norm="group", norm_groups=8)`
passes the kind to `make_norm2d` for every layer). `replace_batchnorm` does the same swap on a model
that is already built, for networks that have no such option.
"""

from __future__ import annotations

from torch import nn

__all__ = ["NORM_KINDS", "GroupNorm1", "make_norm2d", "replace_batchnorm"]

NORM_KINDS = ("batch", "layer", "instance", "group", "none")


class GroupNorm1(nn.GroupNorm):
    """GroupNorm with one group: LayerNorm over (C, H, W) of each sample, with a learned scale and
    shift per channel (PoolFormer's norm)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__(1, dim, eps=eps)


def make_norm2d(kind: str, channels: int, groups: int = 8) -> nn.Module:
    """A norm layer for (B, channels, H, W) maps; ``kind`` in ``NORM_KINDS``.

    "group" uses ``min(groups, channels)`` groups, reduced until it divides ``channels``.
    """
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return GroupNorm1(channels)
    if kind == "instance":
        return nn.GroupNorm(channels, channels)
    if kind == "group":
        g = min(groups, channels)
        while channels % g:
            g -= 1
        return nn.GroupNorm(g, channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"kind must be one of {NORM_KINDS}, got {kind!r}")


def replace_batchnorm(model: nn.Module, kind: str, groups: int = 8) -> int:
    """Replace every ``nn.BatchNorm2d`` inside ``model`` by ``make_norm2d(kind, C, groups)``, in place.

    Returns the number of layers replaced. Build the optimizer *after* this call: the new layers
    have new parameters.
    """
    if kind not in NORM_KINDS:
        raise ValueError(f"kind must be one of {NORM_KINDS}, got {kind!r}")
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, nn.BatchNorm2d):
            if kind != "batch":
                setattr(model, name, make_norm2d(kind, child.num_features, groups))
            count += 1
        else:
            count += replace_batchnorm(child, kind, groups)
    return count
