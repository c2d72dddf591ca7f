"""MoBA: with every block selected it is full causal attention (same weights); the gate picks the
blocks whose mean key best matches the query; cached decoding equals the full forward."""

import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.models.attention.moba import MoBAAttention


def _pair(top_k):
    torch.manual_seed(0)
    moba = MoBAAttention(32, 4, n_kv_heads=2, block_size=3, top_k=top_k, bias=False).double().eval()
    dense = MultiHeadAttention(32, 4, n_kv_heads=2, bias=False, causal=True).double().eval()
    dense.load_state_dict(moba.state_dict())
    return moba, dense


def test_every_block_selected_is_full_causal_attention():
    moba, dense = _pair(top_k=5)  # 13 positions = 5 blocks of 3
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    torch.testing.assert_close(moba(x), dense(x))


def test_fewer_blocks_differ_from_full_attention():
    moba, dense = _pair(top_k=2)
    x = torch.randn(2, 13, 32, dtype=torch.float64)
    assert not torch.allclose(moba(x)[:, 6:], dense(x)[:, 6:])  # later queries see 2 of their 3+ blocks
    torch.testing.assert_close(moba(x)[:, :6], dense(x)[:, :6])  # the first two blocks: nothing to drop


def test_the_gate_selects_the_blocks_with_the_largest_mean_key_score():
    moba, _ = _pair(top_k=3)
    # one head, keys along basis directions: block b's mean key is e_b scaled by weight[b]
    weight = torch.tensor([1.0, 4.0, -2.0, 3.0, 0.5, 9.0])
    k = torch.zeros(1, 1, 18, 8, dtype=torch.float64)
    for b in range(6):
        k[0, 0, 3 * b : 3 * b + 3, b] = weight[b]
    q = torch.ones(1, 1, 1, 8, dtype=torch.float64)  # gate score of block b is weight[b]
    selected = moba.select(q, k, start=14)  # position 14 is in block 4; block 5 is its future
    # own block 4 forced, then the best two of blocks 0-3: block 1 (4.0) and block 3 (3.0)
    assert selected[0, 0, 0].nonzero().flatten().tolist() == [1, 3, 4]


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("moba", tiny=True).double().eval()
    tokens = torch.randint(0, 64, (2, 14))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=4)


def test_bad_masks_and_head_counts_are_refused():
    moba, _ = _pair(top_k=2)
    x = torch.randn(2, 6, 32, dtype=torch.float64)
    with pytest.raises(TypeError, match="bool"):
        moba(x, mask=torch.ones(2, 6))
    with pytest.raises(ValueError, match="shape"):
        moba(x, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        MoBAAttention(32, 4, n_kv_heads=3, block_size=3, top_k=2)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        MoBAAttention(30, 4, block_size=3, top_k=2)
