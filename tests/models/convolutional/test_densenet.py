"""DenseNet: every layer of a dense block sees all earlier feature maps; bad input."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def test_densenet_layers_see_all_earlier_features():
    model = bestiary.build("densenet", growth_rate=4, depths=(3,), d_model=8)
    block = model.blocks[0]
    # layer l of a dense block takes d_model + l * growth_rate channels
    assert [layer.conv1.in_channels for layer in block.layers] == [8, 12, 16]
    out = block(torch.randn(1, 8, 5, 5))
    assert out.shape == (1, 8 + 3 * 4, 5, 5)


def test_densenet_bad_channels():
    with pytest.raises(ShapeError, match=r"C=3"):
        bestiary.build("densenet", tiny=True)(torch.randn(1, 1, 16, 16))
