"""NeRF: positional encoding and volume rendering against NumPy; density ignores the view direction."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def test_nerf_positional_encoding_matches_numpy():
    import numpy as np

    from bestiary.models.vision.nerf import positional_encoding

    x = torch.randn(4, 3, dtype=torch.float64)
    out = positional_encoding(x, 3).numpy()
    xn = x.numpy()
    expected = [xn]
    for k in range(3):
        expected += [np.sin(2**k * np.pi * xn), np.cos(2**k * np.pi * xn)]
    np.testing.assert_allclose(out, np.concatenate(expected, axis=-1), rtol=1e-12, atol=1e-12)


def test_nerf_volume_render_matches_explicit_loop():
    import numpy as np

    from bestiary.models.vision.nerf import volume_render

    torch.manual_seed(0)
    rgb, sigma = torch.rand(2, 5, 3, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64) * 3
    t = torch.sort(torch.rand(2, 5, dtype=torch.float64) * 4, dim=1).values
    colour, weights = volume_render(rgb, sigma, t)
    for r in range(2):
        T, expected = 1.0, np.zeros(3)
        for i in range(5):
            delta = (t[r, i + 1] - t[r, i]).item() if i < 4 else 1e10
            alpha = 1 - np.exp(-sigma[r, i].item() * delta)
            expected += T * alpha * rgb[r, i].numpy()
            np.testing.assert_allclose(weights[r, i].item(), T * alpha, rtol=1e-6)
            T *= 1 - alpha
        np.testing.assert_allclose(colour[r].numpy(), expected, rtol=1e-6)


def test_nerf_density_ignores_direction_colour_does_not():
    model = bestiary.build("nerf", tiny=True).eval()
    points = torch.randn(1, 8, 3)
    d1 = torch.nn.functional.normalize(torch.randn(1, 8, 3), dim=-1)
    d2 = torch.nn.functional.normalize(torch.randn(1, 8, 3), dim=-1)
    with torch.no_grad():
        a, b = model(points, d1), model(points, d2)
    torch.testing.assert_close(a.sigma, b.sigma, rtol=0, atol=0)
    assert not torch.allclose(a.rgb, b.rgb)
    assert a.rgb.min() >= 0 and a.rgb.max() <= 1 and a.sigma.min() >= 0
    with pytest.raises(ShapeError, match="C=3"):
        model(torch.randn(1, 8, 2), d1)
