"""EfficientViT: preset sizes against the published (rounded) counts; the linear attention equals its
quadratic form; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, rounded_millions

import bestiary
from bestiary.models.vision.efficient_vit import LiteMLA


@pytest.mark.parametrize(
    "preset, millions",
    [
        ("efficientvit_b0", 3.4),
        ("efficientvit_b1", 9.1),
        ("efficientvit_b2", 24.3),
        ("efficientvit_b3", 48.6),
    ],
)
def test_efficient_vit_presets_match_published_rounded_counts(preset, millions):
    assert rounded_millions(preset) == millions


def test_efficient_vit_linear_attention_equals_quadratic_form():
    """The O(N) ReLU linear attention equals the explicit O(N^2) normalised ReLU-similarity average."""
    torch.manual_seed(0)
    module = LiteMLA(8, head_dim=4, scales=()).double()  # no multi-scale branch: plain q, k, v
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    qkv = module.qkv(x).reshape(1, 2, 12, 9).transpose(-1, -2)  # (B, heads, N, 3d)
    q, k, v = (t.relu() if i < 2 else t for i, t in enumerate(qkv.chunk(3, dim=-1)))
    sim = q @ k.transpose(-1, -2)  # (B, heads, N, N), explicit pairwise similarities
    out = (sim @ v) / (sim.sum(-1, keepdim=True) + module.eps)  # (B, heads, N, d)
    expected = x + module.proj(out.transpose(-1, -2).reshape(1, 8, 3, 3))
    torch.testing.assert_close(module(x), expected)


def test_efficient_vit_bad_input():
    model = bestiary.build("efficient_vit", tiny=True)
    assert_rejects(model, {(1, 4, 32, 32): "C=3"})
