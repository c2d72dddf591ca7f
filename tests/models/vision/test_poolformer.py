"""PoolFormer against transformers' PoolFormerForImageClassification with copied weights; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, assert_same_logits

import bestiary
from bestiary.models.vision.poolformer import HF_NAMES


def test_poolformer_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import PoolFormerConfig, PoolFormerForImageClassification

    torch.manual_seed(0)
    hf_config = PoolFormerConfig(
        depths=[1, 2],
        hidden_sizes=[8, 16],
        num_encoder_blocks=2,
        patch_sizes=[7, 3],
        strides=[4, 2],
        padding=[2, 1],
        num_labels=5,
        layer_scale_init_value=0.5,
    )
    hf = PoolFormerForImageClassification(hf_config).eval()
    ours = bestiary.build("poolformer", depths=(1, 2), dims=(8, 16), num_classes=5).eval()
    assert_same_logits(ours, hf, HF_NAMES, torch.randn(2, 3, 32, 32))


def test_poolformer_bad_input():
    assert_rejects(bestiary.build("poolformer", tiny=True), {(1, 2, 32, 32): "C=3"})
