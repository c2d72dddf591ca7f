"""ViT against transformers' ViTForImageClassification with copied weights; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, assert_same_logits

import bestiary
from bestiary.models.vision.vit import HF_NAMES


def test_vit_matches_transformers():
    pytest.importorskip("transformers")
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    hf_config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        num_channels=3,
        num_labels=7,
        layer_norm_eps=1e-6,
        qkv_bias=True,
    )
    hf = ViTForImageClassification(hf_config).eval()
    ours = bestiary.build(
        "vit", image_size=16, patch_size=4, d_model=32, n_layers=2, n_heads=4, d_ff=64, num_classes=7
    ).eval()
    assert_same_logits(ours, hf, HF_NAMES, torch.randn(2, 3, 16, 16))


def test_vit_without_qkv_bias_keeps_the_output_bias():
    """qkv_bias=False drops the q/k/v biases only, as in timm (the output projection keeps its own)."""
    attention = bestiary.build("vit", tiny=True, qkv_bias=False).blocks[0].mixer
    assert attention.q_proj.bias is None and attention.k_proj.bias is None and attention.v_proj.bias is None
    assert attention.out_proj.bias is not None


def test_vit_bad_input():
    model = bestiary.build("vit", tiny=True)  # image 16, patch 4
    # learned position embeddings fix the size
    assert_rejects(model, {(1, 1, 16, 16): r"C=3", (1, 3, 20, 20): r"H=16"})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        bestiary.build("vit", image_size=18, patch_size=4)
