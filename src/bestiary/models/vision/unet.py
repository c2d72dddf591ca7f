"""U-Net: an encoder-decoder with skip connections, for per-pixel prediction (segmentation).

Paper: "U-Net: Convolutional Networks for Biomedical Image Segmentation" (Ronneberger, Fischer &
Brox, 2015, arXiv:1505.04597).

The encoder (left side of the "U") halves the resolution and doubles the channels n_layers
times: it learns *what* is in the image. The decoder (right side) upsamples back with transposed
convolutions; at every level it concatenates the encoder's feature map of the same size (the skip
connection), which brings back *where* things are — the fine detail lost by pooling.

Differences from the 2015 paper, as in most modern implementations: "same" padding (output size =
input size, no cropping of the skips) and BatchNorm after every conv.

Image (B, in_channels, H, W) -> per-pixel logits (B, num_classes, H, W); H and W must be
multiples of 2^n_layers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.conv_blocks import ConvNormAct
from bestiary.layers.patch_embed import check_image
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    num_classes: int = 2  # classes per pixel
    d_model: int = 16  # channels at full resolution (64 in the paper)
    n_layers: int = 3  # downsampling steps (4 in the paper)
    image_size: int = 32  # the side of the default example input


class DoubleConv(nn.Sequential):
    """(3x3 conv -> BN -> ReLU) twice: the unit of every U-Net level."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(
            ConvNormAct(in_channels, out_channels, 3), ConvNormAct(out_channels, out_channels, 3)
        )


class Up(nn.Module):
    """Upsample x2 with a transposed conv (halving the channels), concatenate the skip, DoubleConv."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = self.up(x)  # (B, C/2, 2h, 2w)
        return self.conv(torch.cat([skip, x], dim=1))  # (B, C/2, 2h, 2w)


@register(
    "unet",
    family="vision",
    config=Config,
    summary="U-Net: encoder-decoder CNN with skip connections for per-pixel segmentation.",
    paper="U-Net: Convolutional Networks for Biomedical Image Segmentation",
    year=2015,
    arxiv="1505.04597",
    input_kind="image",
    tiny=dict(d_model=4, n_layers=2, image_size=16),
    outputs="per-pixel logits (B, num_classes, H, W)",
)
class UNet(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.num_features = config.d_model
        widths = [config.d_model * 2**i for i in range(config.n_layers + 1)]
        self.inc = DoubleConv(config.in_channels, widths[0])
        self.down = nn.ModuleList(DoubleConv(widths[i], widths[i + 1]) for i in range(config.n_layers))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(Up(widths[i + 1], widths[i]) for i in reversed(range(config.n_layers)))
        self.head = nn.Conv2d(widths[0], config.num_classes, 1)  # a linear classifier at every pixel

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the decoder's full-resolution features (B, d_model, H, W), before the
        per-pixel classifier."""
        check_image(x, self.config.in_channels, multiple_of=2**self.config.n_layers)
        x = self.inc(x)  # (B, d, H, W)
        skips = [x]
        for down in self.down:
            x = down(self.pool(x))  # (B, 2C, h/2, w/2)
            skips.append(x)
        skips.pop()  # the bottleneck output is x itself
        for up in self.up:
            x = up(x, skips.pop())
        return x

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, d_model, H, W) -> per-pixel logits (B, num_classes, H, W)."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
