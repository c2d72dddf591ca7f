"""A classifier made only of 1x1 convolutions, with space-to-depth reshapes doing the spatial mixing.

A 1x1 convolution mixes channels but never looks at a neighbouring pixel. The trick that gives it a
receptive field is **space-to-depth** (``nn.PixelUnshuffle(2)``): a pure reshape that stacks every 2x2
block of pixels into the channel axis, (B, C, H, W) -> (B, 4C, H/2, W/2). A 1x1 conv after it sees
the whole 2x2 block at once -- it *is* a 2x2 convolution with stride 2, written as a reshape plus a
matrix multiply. Repeat it k times and each position summarises a 2^k x 2^k patch of the input.

Space-to-depth as a downsampling layer: "Real-Time Single Image and Video Super-Resolution Using an
Efficient Sub-Pixel Convolutional Neural Network" (Shi et al., 2016, arXiv:1609.05158) introduced its
inverse (pixel shuffle); "Network In Network" (Lin, Chen & Yan, 2013, arXiv:1312.4400) introduced 1x1
convolutions and global average pooling in place of dense layers.

    net = PointwiseNet(PointwiseConfig(widths=(16, 32, 64, 128)))   # images (B, 1, 32, 32)
    logits = net(x)                                                   # (B, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.patch_embed import check_image

__all__ = ["PointwiseConfig", "PointwiseNet"]


@dataclass
class PointwiseConfig:
    in_channels: int = 1
    num_classes: int = 10
    widths: tuple[int, ...] = (16, 32, 64, 128)  # channels after each space-to-depth stage
    depth: int = 1  # extra 1x1 conv + BN + ReLU blocks per stage, after the one that follows the reshape
    image_size: int = 32  # H = W; must be divisible by 2 ** len(widths)


def _pointwise(in_channels: int, out_channels: int) -> nn.Sequential:
    # bias=False: the BatchNorm's shift does the bias's job.
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


class PointwiseNet(nn.Module):
    """Stages of [space-to-depth -> 1x1 conv blocks], then a 1x1 conv to class scores and a global
    average over positions (no parameters). Every weight belongs to a 1x1 convolution or a BatchNorm."""

    def __init__(self, config: PointwiseConfig):
        super().__init__()
        if not config.widths:
            raise ValueError("widths must name at least one stage")
        factor = 2 ** len(config.widths)
        if config.image_size % factor:
            raise ValueError(
                f"image_size={config.image_size} must be divisible by 2**len(widths)={factor} "
                "(each stage halves the resolution): pad the images, e.g. 28 -> 32"
            )
        self.config = config
        stages: list[nn.Module] = []
        channels = config.in_channels
        for width in config.widths:
            blocks: list[nn.Module] = [nn.PixelUnshuffle(2), _pointwise(4 * channels, width)]
            blocks += [_pointwise(width, width) for _ in range(config.depth)]
            stages.append(nn.Sequential(*blocks))
            channels = width
        self.stages = nn.Sequential(*stages)
        self.head = nn.Conv2d(channels, config.num_classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_image(x, self.config.in_channels, image_size=self.config.image_size)
        x = self.stages(x)  # (B, widths[-1], H / 2^k, W / 2^k)
        x = self.head(x)  # (B, num_classes, H / 2^k, W / 2^k): a class score at every position
        return x.mean(dim=(2, 3))  # (B, num_classes): global average pooling

    @staticmethod
    def example_input(config: PointwiseConfig, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, config.in_channels, config.image_size, config.image_size)
