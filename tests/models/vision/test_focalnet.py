"""FocalNet against transformers' FocalNetForImageClassification with copied weights (LayerScale on);
bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, assert_same_logits

import bestiary
from bestiary.models.vision.focalnet import HF_NAMES


def test_focalnet_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import FocalNetConfig, FocalNetForImageClassification

    torch.manual_seed(0)
    hf_config = FocalNetConfig(
        embed_dim=8,
        depths=[1, 2, 1],
        focal_levels=[3, 3, 3],
        focal_windows=[3, 3, 3],
        num_labels=5,
        image_size=32,
        layer_norm_eps=1e-5,
        use_layerscale=True,
        layerscale_value=0.5,
    )
    hf = FocalNetForImageClassification(hf_config).eval()
    ours = bestiary.build(
        "focalnet", d_model=8, depths=(1, 2, 1), focal_levels=3, layer_scale=0.5, num_classes=5
    ).eval()
    assert_same_logits(ours, hf, HF_NAMES, torch.randn(2, 3, 32, 32))


def test_focalnet_bad_input():
    model = bestiary.build("focalnet", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 18, 16): "multiples of 4"})
