"""Norms vs torch.nn, MLPs vs their formulas, the transformer block's two residual layouts."""

import pytest
import torch
import torch.nn.functional as F

from bestiary.layers import FeedForward, RMSNorm, SwiGLU, TransformerBlock, make_norm


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


def test_block_residual_layouts():
    x = torch.randn(2, 4, 8)
    pre = TransformerBlock(8, 2, 16, norm="layernorm", mlp="gelu", pre_norm=True).eval()
    h = x + pre.attn(pre.attn_norm(x), is_causal=True)
    torch.testing.assert_close(pre(x, is_causal=True), h + pre.mlp(pre.mlp_norm(h)))
    post = TransformerBlock(8, 2, 16, norm="layernorm", mlp="gelu", pre_norm=False).eval()
    h = post.attn_norm(x + post.attn(x))
    torch.testing.assert_close(post(x), post.mlp_norm(h + post.mlp(h)))
    cross = TransformerBlock(8, 2, 16, cross_attention=True)
    with pytest.raises(ValueError, match="context"):
        cross(x)
