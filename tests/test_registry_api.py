"""The public registry API and its error messages."""

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean: mlp"):
        bestiary.build("mpl")


def test_unknown_name_without_close_match_points_to_list_models():
    with pytest.raises(bestiary.RegistryError, match="list_models"):
        bestiary.build("qqqqqqqq")


def test_unknown_option_lists_valid_ones():
    with pytest.raises(bestiary.ConfigError, match="Valid options: in_dim, d_model"):
        bestiary.build("mlp", width=3)


def test_wrong_input_shape_names_expected_shape():
    model = bestiary.build("mlp", in_dim=5)
    with pytest.raises(ShapeError, match=r"expected x of shape \(B, F=5\), got \(2, 3\)"):
        model(torch.randn(2, 3))


def test_overrides_reach_the_config():
    model = bestiary.build("mlp", in_dim=7, num_classes=4, d_model=16)
    assert model(torch.randn(3, 7)).shape == (3, 4)
    assert bestiary.config("mlp", tiny=True, d_model=5).d_model == 5


def test_tiny_config_is_smaller_than_default():
    assert bestiary.count_params(bestiary.build("mlp", tiny=True)) < bestiary.count_params(
        bestiary.build("mlp")
    )


def test_families_and_filter():
    assert "feedforward" in bestiary.families()
    assert "mlp" in bestiary.list_models("feedforward")
    with pytest.raises(KeyError, match="unknown family"):
        bestiary.list_models("nope")


def test_card_text_names_the_paper():
    text = str(bestiary.card("mlp"))
    assert "back-propagating" in text and "options:" in text


def test_register_rejects_a_non_dataclass_config():
    with pytest.raises(TypeError, match="dataclass"):
        bestiary.register(
            "x", family="f", config=dict, summary="", paper="", year=None, arxiv=None, input_kind="vector"
        )


def test_build_lm_rejects_non_sequence_backbone():
    with pytest.raises(ValueError, match="sequence backbone"):
        bestiary.build_lm("mlp", vocab_size=10)


def test_quick_reads_the_environment(monkeypatch):
    monkeypatch.setenv("BESTIARY_QUICK", "1")
    assert bestiary.quick()
    monkeypatch.setenv("BESTIARY_QUICK", "0")
    assert not bestiary.quick()


def test_importing_scratch_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, bestiary.scratch; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
