"""MetaFormer: each token mixer mixes tokens only when it should; ResScale where asked; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects

import bestiary
from bestiary.layers.block import ChannelScale
from bestiary.layers.metaformer_net import make_mixer


@pytest.mark.parametrize(
    "mixer, spreads", [("identity", False), ("pooling", True), ("sepconv", True), ("attention", True)]
)
def test_metaformer_mixers_mix_tokens_only_when_they_should(mixer, spreads):
    torch.manual_seed(0)
    module = make_mixer(mixer, 8, head_dim=4).eval()
    x = torch.randn(1, 5, 5, 8)  # (B, H, W, C)
    probe = x.clone()
    probe[0, 0, 0] += 1.0  # change one token in a corner
    with torch.no_grad():
        changed = (module(probe) - module(x)).abs().sum(-1)[0]  # (H, W)
    others = changed.clone()
    others[0, 0] = 0
    assert (others.max() > 1e-6) == spreads
    if mixer == "pooling":  # a 3x3 neighbourhood: the far corner is untouched
        assert changed[4, 4] == 0 and changed[1, 1] > 0


def test_metaformer_res_scale_only_in_the_chosen_stages():
    model = bestiary.build("metaformer", tiny=True, res_scale_stages=(3,))
    scaled = [isinstance(stage[0].mixer_res_scale, ChannelScale) for stage in model.stages]
    assert scaled == [False, False, False, True]


def test_metaformer_bad_input():
    assert_rejects(bestiary.build("metaformer", tiny=True), {(1, 2, 32, 32): "C=3"})
