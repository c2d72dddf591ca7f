"""MobileNetV2 (the full preset) against transformers' MobileNetV2ForImageClassification; bad input."""

import pytest
import torch
from conv_helpers import copy_in_order

import bestiary
from bestiary.layers.checks import ShapeError


def test_mobilenet_v2_preset_matches_transformers():
    """Symmetric padding in transformers (tf_padding=False); weights copied in module order."""
    pytest.importorskip("transformers")
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    torch.manual_seed(0)
    hf = MobileNetV2ForImageClassification(MobileNetV2Config(tf_padding=False, num_labels=10)).eval()
    with torch.no_grad():
        for module in hf.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = bestiary.build("mobilenet_v2", num_classes=10).eval()
    # both register num_batches_tracked after each BatchNorm's statistics: same order, same count
    copy_in_order(ours, list(hf.state_dict().items()))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-4)


def test_mobilenet_bad_channels():
    with pytest.raises(ShapeError, match=r"C=3"):
        bestiary.build("mobilenet", tiny=True)(torch.randn(1, 1, 16, 16))
