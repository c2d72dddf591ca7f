"""InfLLM-V2: dense (same weights as plain attention) for short contexts and with every block
selected; block relevance = max over overlapping mean-pooled windows of the group-summed softmax,
checked against a per-query float64 loop; cached decoding equals the full forward."""

import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.models.attention.infllm_v2 import InfLLMV2Attention, mean_pool_windows


def _pair(top_k=2, dense_len=0):
    torch.manual_seed(0)
    sparse = InfLLMV2Attention(
        32,
        4,
        n_kv_heads=2,
        block_size=4,
        compress_size=2,
        compress_stride=1,
        top_k=top_k,
        dense_len=dense_len,
        bias=False,
    ).double()
    dense = MultiHeadAttention(32, 4, n_kv_heads=2, bias=False, causal=True).double()
    dense.load_state_dict(sparse.state_dict())  # no parameters of its own: the dense model's weights
    return sparse, dense


def test_short_contexts_are_dense_and_long_ones_are_not():
    sparse, dense = _pair(top_k=3, dense_len=14)
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x)[:, :14], dense(x)[:, :14])  # context <= 14: dense
        assert not torch.allclose(sparse(x)[:, 14:], dense(x)[:, 14:])  # 5 blocks, 3 read


def test_every_block_selected_is_dense_attention():
    sparse, dense = _pair(top_k=5)  # 20 positions: 5 blocks of 4
    x = torch.randn(2, 20, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), dense(x))


def test_mean_pooled_windows_overlap_by_the_stride():
    k = torch.arange(12.0).view(1, 1, 6, 2)
    torch.testing.assert_close(
        mean_pool_windows(k, 4, 2), torch.stack([k[..., 0:4, :].mean(-2), k[..., 2:6, :].mean(-2)], dim=-2)
    )


def test_block_relevance_is_the_max_over_overlapping_windows_of_group_summed_softmax():
    sparse, _ = _pair()
    sparse.compress_size, sparse.compress_stride = 3, 2  # windows [0,3), [2,5), [4,7), ...: overlapping
    g = torch.Generator().manual_seed(1)
    q = torch.randn(1, 4, 3, 8, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, 13, 8, generator=g, dtype=torch.float64)
    positions = torch.tensor([6, 9, 12])
    got = sparse.block_relevance(q, k, positions)  # (1, 2, 3, 4 blocks)
    for i, t in enumerate(positions.tolist()):
        windows = [s for s in range(0, 13, 2) if s + 3 - 1 <= t]  # complete windows only
        for kv in range(2):
            mass = torch.zeros(len(windows), dtype=torch.float64)
            for h in (2 * kv, 2 * kv + 1):
                keys = torch.stack([k[0, kv, s : s + 3].mean(0) for s in windows])
                mass += torch.softmax(keys @ q[0, h, i] / 8**0.5, dim=0)
            for b in range(4):
                over = [m for s, m in zip(windows, mass) if s < 4 * b + 4 and s + 3 > 4 * b]
                expected = max(over) if over else torch.tensor(0.0, dtype=torch.float64)
                torch.testing.assert_close(got[0, kv, i, b], expected)


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = (
        bestiary.build("infllm_v2", tiny=True).double().eval()
    )  # dense_len 6: the switch happens mid-sequence
    tokens = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=4)


def test_bad_options_and_masks_are_refused():
    with pytest.raises(ValueError, match="compress_size"):
        bestiary.build("infllm_v2", tiny=True, compress_size=1, compress_stride=2)
    sparse, _ = _pair()
    with pytest.raises(ValueError, match="padding mask"):
        sparse(torch.randn(1, 4, 32, dtype=torch.float64), mask=torch.ones(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        InfLLMV2Attention(
            32, 4, n_kv_heads=3, block_size=4, compress_size=2, compress_stride=1, top_k=2, dense_len=0
        )
