"""ConvNeXt against transformers' ConvNextForImageClassification with copied weights; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, assert_same_logits

import bestiary
from bestiary.models.vision.convnext import HF_NAMES


def test_convnext_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    hf_config = ConvNextConfig(
        hidden_sizes=[8, 16, 24],
        depths=[1, 2, 1],
        num_stages=3,
        num_labels=5,
        layer_scale_init_value=0.5,  # big enough that every block changes the output
    )
    hf = ConvNextForImageClassification(hf_config).eval()
    ours = bestiary.build("convnext", depths=(1, 2, 1), dims=(8, 16, 24), num_classes=5).eval()
    assert_same_logits(ours, hf, HF_NAMES, torch.randn(2, 3, 32, 32))


def test_convnext_bad_input():
    model = bestiary.build("convnext", tiny=True)  # two stages: downsampling factor 8
    assert_rejects(model, {(1, 4, 16, 16): r"C=3", (1, 3, 12, 12): r"multiples of 8"})
