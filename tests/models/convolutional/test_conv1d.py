"""The 1-D/2-D CNN: its first conv is a cross-correlation (NumPy, float64); shapes and bad input."""

import numpy as np
import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def test_conv1d_first_conv_is_a_cross_correlation_float64():
    """The first conv of the 1-D CNN against a NumPy sliding dot product (float64)."""
    model = bestiary.build("conv1d", dims=(3,), kernel_size=3, in_channels=2).double()
    conv = model.blocks[0][0]
    x = torch.randn(1, 2, 10, dtype=torch.float64)
    w = conv.weight.detach().numpy()  # (out, in, k)
    padded = np.pad(x.numpy()[0], ((0, 0), (1, 1)))
    expected = np.array([[(w[o] * padded[:, t : t + 3]).sum() for t in range(10)] for o in range(3)])
    np.testing.assert_allclose(conv(x)[0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_conv1d_shapes_and_bad_input(spatial_dims):
    model = bestiary.build("conv1d", tiny=True, spatial_dims=spatial_dims, in_channels=3, num_classes=4)
    x = bestiary.example_input("conv1d", 2, tiny=True, spatial_dims=spatial_dims, in_channels=3)
    assert model(x).shape == (2, 4)
    with pytest.raises(ShapeError, match="C=3"):
        model(x[:, :2])
    with pytest.raises(ShapeError, match="expected input of shape"):
        model(x[0])  # no batch dimension
