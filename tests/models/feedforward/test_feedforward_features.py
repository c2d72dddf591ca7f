"""The features API on feedforward classifiers: forward == forward_head(forward_features(x)); TabNet's
features are the decision its Linear head reads."""

import pytest
import torch

import bestiary


@pytest.mark.parametrize("name", ["mlp", "kan", "bitnet", "kat"])
def test_classifier_is_head_of_features(name):
    torch.manual_seed(0)
    model = bestiary.build(name, tiny=True).eval()
    x = bestiary.example_input(name, 2, tiny=True)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape[0] == 2 and features.shape[-1] == model.num_features
        torch.testing.assert_close(model.forward_head(features), model(x), rtol=0, atol=0)


def test_tabnet_features_are_the_decision_its_head_reads():
    torch.manual_seed(0)
    model = bestiary.build("tabnet", tiny=True).eval()
    x = bestiary.example_input("tabnet", 4, tiny=True)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (4, model.num_features)
        torch.testing.assert_close(model.head(features), model(x).logits, rtol=0, atol=0)
