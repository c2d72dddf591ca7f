"""Gaussian splatting: an analytic projected Gaussian, occlusion in depth order, gradients, cameras."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def _single_gaussian_model(image_size, focal, mean, scale, opacity_logit, color_logit):
    model = bestiary.build("gaussian_splat", n_gaussians=len(mean), image_size=image_size, focal=focal)
    with torch.no_grad():
        model.means.copy_(torch.tensor(mean))
        model.log_scales.copy_(torch.tensor(scale).log()[:, None].expand(-1, 3))
        model.opacity_logits.copy_(torch.tensor(opacity_logit))
        model.color_logits.copy_(torch.tensor(color_logit))
    return model


def test_gaussian_splat_renders_the_analytic_projected_gaussian():
    """An isotropic Gaussian on the optical axis projects to an isotropic 2-D Gaussian of std f*s/z."""
    f, s, z, size = 10.0, 0.2, 4.0, 9
    model = _single_gaussian_model(size, f, [[0.0, 0.0, z]], [s], [0.0], [[0.0, 2.0, -2.0]])
    camera = torch.eye(4)[None]  # world = camera frame
    with torch.no_grad():
        out = model(camera)
    ys, xs = torch.meshgrid(torch.arange(size) - 4.0, torch.arange(size) - 4.0, indexing="ij")
    variance = (f * s / z) ** 2 + 0.3  # plus the low-pass dilation
    alpha = 0.5 * torch.exp(-0.5 * (xs**2 + ys**2) / variance)
    color = torch.sigmoid(torch.tensor([0.0, 2.0, -2.0]))
    torch.testing.assert_close(out.image[0], color[:, None, None] * alpha, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.alpha[0, 0], alpha, rtol=1e-5, atol=1e-6)


def test_gaussian_splat_front_gaussian_occludes_and_gradients_flow():
    red, blue = [8.0, -8.0, -8.0], [-8.0, -8.0, 8.0]
    model = _single_gaussian_model(
        5, 5.0, [[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]], [0.5, 0.5], [8.0, 8.0], [red, blue]
    )
    out = model(torch.eye(4)[None])
    centre = out.image[0, :, 2, 2]
    assert centre[0] > 0.9 and centre[2] < 0.1  # the near (red) Gaussian hides the far one
    out.image.sum().backward()
    assert model.means.grad.abs().sum() > 0 and model.log_scales.grad.abs().sum() > 0
    with torch.no_grad():  # move the red one behind the blue one: now blue wins
        model.means[0, 2] = 6.0
        assert model(torch.eye(4)[None]).image[0, 2, 2, 2] > 0.9
    with pytest.raises(ShapeError, match="R=4"):
        model(torch.eye(3)[None])


def test_gaussian_splat_look_at_cameras_see_the_scene_upright():
    from bestiary.models.vision.gaussian_splat import look_at_cameras

    model = _single_gaussian_model(16, 16.0, [[0.0, 0.6, 0.0]], [0.1], [4.0], [[4.0, 4.0, 4.0]])
    with torch.no_grad():
        alpha = model(look_at_cameras(3, elevation=0.0)).alpha[:, 0]  # (3, H, W)
    for view in alpha:
        row = view.sum(dim=1).argmax()
        assert view.max() > 0.5 and row < 7  # world "up" is the top of the image
