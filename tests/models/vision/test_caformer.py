"""CAFormer: preset sizes against the published (rounded) counts; its mixers by stage; bad input."""

import pytest
from vision_helpers import assert_rejects, rounded_millions

import bestiary
from bestiary.layers.spatial_mixers import MapAttention, SepConv


@pytest.mark.parametrize(
    "preset, millions",
    [("caformer_s18", 26.3), ("caformer_s36", 39.3), ("caformer_m36", 56.2), ("caformer_b36", 98.8)],
)
def test_caformer_presets_match_published_rounded_counts(preset, millions):
    """Only rounded counts are published (timm model cards: 26.3M, 39.3M, 56.2M, 98.8M)."""
    assert rounded_millions(preset) == millions


def test_caformer_convolves_early_and_attends_late():
    model = bestiary.build("caformer", tiny=True)
    mixers = [type(stage[0].mixer) for stage in model.stages]
    assert mixers == [SepConv, SepConv, MapAttention, MapAttention]


def test_caformer_bad_input():
    assert_rejects(bestiary.build("caformer", tiny=True), {(1, 2, 32, 32): "C=3"})
