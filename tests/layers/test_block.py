"""The one residual Block: its layouts follow their formulas, for any token mixer."""

import pytest
import torch
from torch import nn

from bestiary.layers import (
    Block,
    CrossAttention,
    MultiHeadAttention,
    RotaryEmbedding,
    make_mlp,
    transformer_block,
)


def _attention(**options):
    return MultiHeadAttention(8, 2, **options)


def test_pre_and_post_norm_follow_their_formulas():
    x = torch.randn(2, 4, 8)
    pre = Block(8, _attention(causal=True), make_mlp("gelu", 8, 16)).eval()
    h = x + pre.mixer(pre.mixer_norm(x))
    torch.testing.assert_close(pre(x), h + pre.mlp(pre.mlp_norm(h)))
    post = Block(8, _attention(), make_mlp("gelu", 8, 16), pre_norm=False).eval()
    h = post.mixer_norm(x + post.mixer(x))
    torch.testing.assert_close(post(x), post.mlp_norm(h + post.mlp(h)))


def test_layer_scale_and_res_scale_scale_the_branch_and_the_shortcut():
    x = torch.randn(2, 4, 8)
    block = Block(8, _attention(), make_mlp("gelu", 8, 16), layer_scale=0.1, res_scale=2.0).eval()
    h = 2.0 * x + 0.1 * block.mixer(block.mixer_norm(x))
    torch.testing.assert_close(block(x), 2.0 * h + 0.1 * block.mlp(block.mlp_norm(h)))
    assert dict(block.named_parameters())["mixer_scale.scale"].shape == (8,)
    with pytest.raises(ValueError, match="pre-norm"):
        Block(8, _attention(), make_mlp("gelu", 8, 16), pre_norm=False, layer_scale=0.1)


class _MeanPool2d(nn.Module):
    """A spatial token mixer on (B, C, H, W): each position minus its 3x3 neighbourhood mean."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(3, 1, 1, count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x


def test_feature_maps_with_a_norm_factory_and_channels_first_scales():
    x = torch.randn(2, 6, 5, 5)  # (B, C, H, W)
    mlp = nn.Sequential(nn.Conv2d(6, 12, 1), nn.GELU(), nn.Conv2d(12, 6, 1))
    block = Block(
        6, _MeanPool2d(), mlp, norm=lambda dim: nn.GroupNorm(1, dim), layer_scale=0.5, channels_last=False
    ).eval()
    assert isinstance(block.mixer_norm, nn.GroupNorm)
    h = x + 0.5 * block.mixer(block.mixer_norm(x))
    torch.testing.assert_close(block(x), h + 0.5 * block.mlp(block.mlp_norm(h)))


def test_drop_path_drops_whole_branches_only_in_training():
    torch.manual_seed(0)
    block = Block(8, _attention(), make_mlp("gelu", 8, 16), drop_path=0.5)
    x = torch.randn(64, 3, 8)
    block.eval()
    full = block(x)
    block.train()
    out = block(x)
    # per sample, the output is one of four: each branch kept (scaled by 2) or dropped
    assert not torch.allclose(out, full)
    block.eval()
    torch.testing.assert_close(block(x), full)


def test_cross_mixer_reads_the_context():
    x, memory = torch.randn(2, 4, 8), torch.randn(2, 6, 8)
    block = Block(
        8, _attention(causal=True), make_mlp("relu", 8, 16), cross_mixer=CrossAttention(8, 2)
    ).eval()
    h = x + block.mixer(block.mixer_norm(x))
    h = h + block.cross_mixer(block.cross_norm(h), memory)
    torch.testing.assert_close(block(x, context=memory), h + block.mlp(block.mlp_norm(h)))
    with pytest.raises(ValueError, match="context"):
        block(x)


def test_block_decodes_incrementally_through_its_mixer_cache():
    block = transformer_block(8, 2, 16, n_kv_heads=1, rope=RotaryEmbedding(4)).eval()
    x = torch.randn(2, 6, 8)
    cache = block.init_cache(2)
    steps = [block(x[:, :3], cache=cache)] + [block(x[:, t : t + 1], cache=cache) for t in range(3, 6)]
    torch.testing.assert_close(torch.cat(steps, dim=1), block(x), atol=1e-5, rtol=0)
