"""SPLA: every block selected is full causal attention (same weights, residual exactly zero); the
Taylor block mass and the residual linear attention equal per-key float64 sums; cached decoding
equals the full forward."""

import pytest
import torch
import torch.nn.functional as F
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.models.attention.spla import SPLAAttention, residual_linear_attention, taylor_block_mass


def _pair(top_k):
    torch.manual_seed(0)
    spla = SPLAAttention(32, 4, n_kv_heads=2, block_size=3, top_k=top_k, bias=False).double()
    dense = MultiHeadAttention(32, 4, n_kv_heads=2, bias=False, causal=True).double()
    missing = dense.load_state_dict(spla.state_dict(), strict=False).unexpected_keys
    assert sorted(missing) == ["residual_gate.bias", "residual_gate.weight"]  # the only extra weights
    return spla, dense


def test_every_block_selected_is_full_causal_attention():
    spla, dense = _pair(top_k=5)  # 14 positions: 5 blocks of 3
    x = torch.randn(2, 14, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(spla(x), dense(x))


def test_fewer_blocks_add_a_linear_summary_of_the_skipped_ones():
    spla, dense = _pair(top_k=2)
    x = torch.randn(2, 14, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(spla(x)[:, :6], dense(x)[:, :6])  # two blocks: nothing to skip
        with_residual = spla(x)
        spla.residual_gate.bias.fill_(-1e4)  # gate closed: pure block-sparse attention
        without = spla(x)
    assert not torch.allclose(with_residual[:, 9:], without[:, 9:])


def test_taylor_block_mass_is_the_per_key_second_order_expansion():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 3, 4, generator=g, dtype=torch.float64)
    k = torch.randn(1, 2, 7, 4, generator=g, dtype=torch.float64)
    got = taylor_block_mass(q, k, 3)  # blocks [0, 3), [3, 6), [6, 7)
    s = q @ k.transpose(-2, -1) / 2.0  # / sqrt(4)
    terms = 1 + s + s**2 / 2
    expected = torch.stack(
        [terms[..., 0:3].sum(-1), terms[..., 3:6].sum(-1), terms[..., 6:7].sum(-1)], dim=-1
    )
    torch.testing.assert_close(got, expected)


def test_residual_is_linear_attention_over_exactly_the_skipped_keys():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 9, 4, generator=g, dtype=torch.float64) for _ in range(3))
    skipped = torch.zeros(1, 1, 9, 3, dtype=torch.bool)
    skipped[0, 0, 7, [0, 1]] = True  # query 7 skipped blocks 0 and 1
    skipped[0, 0, 8, 1] = True
    got = residual_linear_attention(q, k, v, skipped, 3)
    phi = lambda t: F.elu(t) + 1  # noqa: E731
    for t, keys in ((7, range(0, 6)), (8, range(3, 6))):
        weights = torch.stack([phi(q[0, 0, t]) @ phi(k[0, 0, j]) for j in keys])
        expected = (weights[:, None] * v[0, 0, list(keys)]).sum(0) / weights.sum()
        torch.testing.assert_close(got[0, 0, t], expected)
    assert torch.all(got[0, 0, :7] == 0)  # nothing skipped: exactly zero


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("spla", tiny=True).double().eval()
    tokens = torch.randint(0, 64, (2, 14))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=4)


def test_bad_head_counts_are_refused():
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        SPLAAttention(32, 4, n_kv_heads=3, block_size=3, top_k=2)
    with pytest.raises(ValueError, match="divisible by n_heads"):
        SPLAAttention(30, 4, block_size=3, top_k=2)
