"""Norms vs torch.nn, MLPs vs their formulas, the transformer block's two residual layouts."""

import pytest
import torch
import torch.nn.functional as F

from bestiary.layers import FeedForward, RMSNorm, SwiGLU, make_norm


def test_rmsnorm_matches_torch():
    ours = RMSNorm(12, eps=1e-6)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(12))
    ref = torch.nn.RMSNorm(12, eps=1e-6)
    ref.weight.data.copy_(ours.weight)
    x = torch.randn(3, 5, 12)
    torch.testing.assert_close(ours(x), ref(x))


def test_make_norm_layernorm_is_torch_layernorm():
    norm = make_norm("layernorm", 6, eps=1e-12)
    assert isinstance(norm, torch.nn.LayerNorm) and norm.eps == 1e-12
    with pytest.raises(ValueError, match="rmsnorm"):
        make_norm("batchnorm", 6)


def test_mlps_follow_their_formulas():
    x = torch.randn(2, 3, 8)
    ff = FeedForward(8, 16, activation="gelu")
    torch.testing.assert_close(
        ff(x), F.linear(F.gelu(F.linear(x, ff.up.weight, ff.up.bias)), ff.down.weight, ff.down.bias)
    )
    sw = SwiGLU(8, 16)
    expected = (F.silu(x @ sw.gate.weight.T) * (x @ sw.up.weight.T)) @ sw.down.weight.T
    torch.testing.assert_close(sw(x), expected)
