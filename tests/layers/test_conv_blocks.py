"""Convolutional building blocks: the inverted residual, MobileNet's channel rounding, stochastic depth."""

import pytest
import torch

from bestiary.layers.conv_blocks import ConvNormAct, InvertedResidual, make_divisible
from bestiary.layers.drop_path import DropPath, drop_path_rates


def test_inverted_residual_uses_residual_only_when_shapes_match():
    same = InvertedResidual(8, 8, 1, 6).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(same(x), x + same.block(x))
    assert not InvertedResidual(8, 8, 2, 6).use_residual
    assert not InvertedResidual(8, 16, 1, 6).use_residual


def test_conv_norm_act_takes_its_norm_kind():
    assert type(ConvNormAct(4, 8)[1]) is torch.nn.BatchNorm2d
    assert ConvNormAct(4, 8, norm="group", norm_groups=2)[1].num_groups == 2
    assert type(ConvNormAct(4, 8, norm="none")[1]) is torch.nn.Identity


def test_make_divisible_follows_the_mobilenet_rule():
    # rounded to the nearest multiple of 8, never more than 10% below the request
    assert [make_divisible(v) for v in (32 * 0.75, 1280 * 1.4, 16 * 0.35, 10, 3)] == [24, 1792, 8, 16, 8]


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    torch.manual_seed(0)
    layer = DropPath(0.25)
    x = torch.ones(20000, 3)
    out = layer(x)
    kept = (out[:, 0] != 0).float().mean()
    assert abs(kept.item() - 0.75) < 0.02  # whole samples dropped with probability p
    assert torch.all((out == 0) | torch.isclose(out, torch.tensor(1 / 0.75)))  # survivors rescaled by 1/(1-p)
    assert abs(out.mean().item() - 1.0) < 0.03
    layer.eval()
    assert torch.equal(layer(x), x)
    assert drop_path_rates(0.2, 3) == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError):
        DropPath(1.0)
