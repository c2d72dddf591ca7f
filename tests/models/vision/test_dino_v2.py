"""DINOv2 against transformers' Dinov2WithRegistersModel with copied weights (masked patches,
registers); the DINO head and loss; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, copy_renamed

import bestiary
from bestiary.models.vision.dino_v2 import HF_NAMES, dino_loss


def assert_dino_tokens_match(out, ref: torch.Tensor, n_registers: int) -> None:
    """Our DinoOutput against a reference last_hidden_state laid out [CLS], registers, patches."""
    torch.testing.assert_close(out.cls_token, ref[:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.register_tokens, ref[:, 1 : 1 + n_registers], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.patch_tokens, ref[:, 1 + n_registers :], rtol=1e-4, atol=1e-5)


def test_dino_v2_backbone_matches_transformers_with_registers():
    pytest.importorskip("transformers")
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(0)
    hf_config = Dinov2WithRegistersConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=16,
        patch_size=4,
        num_register_tokens=2,
        layerscale_value=0.5,
    )
    hf = Dinov2WithRegistersModel(hf_config).eval()
    ours = bestiary.build("dino_v2", tiny=True, head_prototypes=0, d_ff=64).eval()
    copy_renamed(ours, hf.state_dict(), HF_NAMES)
    x = torch.randn(2, 3, 16, 16)
    mask = torch.rand(2, 16) < 0.3
    with torch.no_grad():
        out = ours(x, mask=mask)
        ref = hf(x, bool_masked_pos=mask).last_hidden_state  # [CLS], registers, patches
    assert_dino_tokens_match(out, ref, n_registers=2)
    assert out.prototype_logits is None


def test_dino_head_is_cosine_similarity_and_loss_is_soft_cross_entropy():
    model = bestiary.build("dino_v2", tiny=True).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 16, 16)).prototype_logits
    assert logits.shape == (3, 32) and logits.abs().max() <= 1.0 + 1e-6  # cosines
    student, teacher, center = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10), torch.randn(1, 10)
    loss = dino_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.04)
    target = torch.softmax((teacher - center) / 0.04, dim=-1)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(student / 0.1, target))


def test_dino_v2_bad_input():
    model = bestiary.build("dino_v2", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 20, 20): "H=16"})
