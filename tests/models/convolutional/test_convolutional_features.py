"""The features API on CNN classifiers: forward == forward_head(forward_features(x)); the features
are the last map, channels first, num_features wide (pooled for the 1-D/2-D conv1d)."""

import pytest
import torch

import bestiary


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "densenet"])
def test_classifier_is_head_of_its_last_feature_map(name):
    torch.manual_seed(0)
    model = bestiary.build(name, tiny=True).eval()
    x = bestiary.example_input(name, 2, tiny=True)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.dim() == 4 and features.shape[:2] == (2, model.num_features)
        assert features.shape[2] < x.shape[2]  # downsampled
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_conv1d_features_are_pooled_for_signals_and_images(spatial_dims):
    torch.manual_seed(0)
    model = bestiary.build("conv1d", tiny=True, spatial_dims=spatial_dims).eval()
    x = bestiary.example_input("conv1d", 2, tiny=True, spatial_dims=spatial_dims)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, model.num_features)
        torch.testing.assert_close(features, model.blocks(x).flatten(2).mean(dim=2))
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)
