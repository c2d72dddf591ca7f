"""The features API on vision models: forward == forward_head(forward_features(x)), and the
features are what the docstrings promise (tokens for ViTs; channels-first maps for the hierarchical
models, even those whose blocks run channels-last)."""

import pytest
import torch

import bestiary


@pytest.mark.parametrize(
    "name, shape",
    [
        ("vit", (2, 1 + 16, 16)),  # tiny: 16x16 image, patch 4 -> [CLS] + 16 patch tokens, d_model 16
        ("swin", (2, 16, 4, 4)),  # tiny: 16x16 image, patch 2, one merge -> 4x4 map of width 2 * 8
        ("convnext", (2, 16, 2, 2)),  # tiny: two stages -> stride 8, width 16, channels first
    ],
)
def test_classifier_is_head_of_features(name, shape):
    torch.manual_seed(0)
    model = bestiary.build(name, tiny=True).eval()
    x = bestiary.example_input(name, 2, tiny=True)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == shape
        assert features.shape[1 if features.dim() == 4 else -1] == model.num_features
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)


def test_vit_head_reads_cls_token_or_mean_of_patches():
    torch.manual_seed(0)
    model = bestiary.build("vit", tiny=True, pool="mean").eval()
    features = torch.randn(2, 17, 16)
    expected = model.head(features[:, 1:].mean(dim=1))
    torch.testing.assert_close(model.forward_head(features), expected)
