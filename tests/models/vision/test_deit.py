"""DeiT against transformers' DeiTForImageClassificationWithTeacher (both heads); the distillation loss."""

import pytest
import torch
import torch.nn.functional as F
from vision_helpers import copy_renamed

import bestiary
from bestiary.models.vision.deit import HF_NAMES, distillation_loss


def test_deit_matches_transformers_with_teacher_head():
    pytest.importorskip("transformers")
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    torch.manual_seed(0)
    hf_config = DeiTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=4,
        num_labels=3,
        layer_norm_eps=1e-6,
    )
    hf = DeiTForImageClassificationWithTeacher(hf_config).eval()
    ours = bestiary.build("deit", tiny=True, num_classes=3).eval()
    copy_renamed(ours, hf.state_dict(), HF_NAMES)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = hf(x)
        cls_logits, dist_logits = ours.heads(ours.forward_features(x))
        torch.testing.assert_close(cls_logits, expected.cls_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dist_logits, expected.distillation_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours(x), expected.logits, rtol=1e-4, atol=1e-5)


def test_deit_distillation_loss():
    cls_logits, dist_logits = torch.randn(4, 5), torch.randn(4, 5)
    labels, teacher = torch.randint(0, 5, (4,)), torch.randn(4, 5)
    hard = distillation_loss(cls_logits, dist_logits, labels, teacher, "hard", alpha=0.5)
    expected = 0.5 * F.cross_entropy(cls_logits, labels) + 0.5 * F.cross_entropy(
        dist_logits, teacher.argmax(-1)
    )
    torch.testing.assert_close(hard, expected)
    # soft with a teacher equal to the student's distillation head: the KL term vanishes
    soft = distillation_loss(cls_logits, dist_logits, labels, dist_logits, "soft", alpha=0.5, tau=3.0)
    torch.testing.assert_close(soft, 0.5 * F.cross_entropy(cls_logits, labels))
