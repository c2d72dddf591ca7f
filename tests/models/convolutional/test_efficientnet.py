"""EfficientNet: compound scaling grows depth and width as the paper's table says; bad input."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError
from bestiary.layers.conv_blocks import InvertedResidual


def test_efficientnet_compound_scaling_grows_depth_and_width():
    def n_blocks(model):
        return sum(isinstance(m, InvertedResidual) for m in model.features)

    b0 = bestiary.build("efficientnet_b0", num_classes=10)
    b3 = bestiary.build("efficientnet_b3", num_classes=10)
    assert n_blocks(b0) == 16  # the paper's Table 1: 1+2+2+3+3+4+1
    assert n_blocks(b3) == 26  # ceil(1.4 * n) per stage
    assert b3.head.in_features == b3.num_features == 1536  # 4 * make_divisible(320 * 1.2)


def test_efficientnet_bad_channels():
    with pytest.raises(ShapeError, match=r"C=3"):
        bestiary.build("efficientnet", tiny=True)(torch.randn(1, 1, 16, 16))
