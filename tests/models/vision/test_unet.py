"""U-Net: per-pixel logits, the full-resolution skip carries local detail; bad input."""

import torch
from vision_helpers import assert_rejects

import bestiary


def test_unet_outputs_per_pixel_logits_and_skips_matter():
    model = bestiary.build("unet", tiny=True, num_classes=3).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3, 16, 16)
        # a local change of the input changes the output mostly nearby (the skip at full resolution)
        probe = x.clone()
        probe[:, :, 0, 0] += 5.0
        diff = (model(probe) - out).abs().sum(dim=(0, 1))  # (H, W)
    assert diff[0, 0] > 0 and diff[:2, :2].sum() > diff[-4:, -4:].sum()


def test_unet_bad_input():
    model = bestiary.build("unet", tiny=True)  # 2 downsamplings: multiples of 4
    assert_rejects(model, {(1, 3, 18, 18): "multiples of 4", (1, 1, 16, 16): "C=3"})
