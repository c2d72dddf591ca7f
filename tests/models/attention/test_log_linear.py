"""log_linear: the Fenwick-state recurrence equals the naive O(T^2) masked form written in the test
(float64, levels from Python's int.bit_length); buckets partition the prefix in powers of two;
equal level weights reduce it to plain decayed linear attention; decoding matches."""

import torch
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.linear_attention import linear_attention
from bestiary.models.attention.log_linear import fenwick_levels


def test_levels_partition_the_prefix_into_power_of_two_buckets():
    levels = fenwick_levels(37)
    for t in range(37):
        row = levels[t, : t + 1].tolist()
        assert row == [0 if s == t else (t ^ s).bit_length() for s in range(t + 1)]
        sizes = torch.bincount(torch.tensor(row))
        assert sizes[0] == 1 and all(
            n in (0, 2 ** (level - 1)) for level, n in enumerate(sizes.tolist()) if level
        )
        assert (sizes > 0).sum() == bin(t).count("1") + 1  # one bucket per set bit of t, plus {t}
    assert (levels[torch.triu_indices(37, 37, 1).unbind()] == -1).all()


def _naive(mixer, x):
    q, k, v, log_a, lam = mixer._project(x)
    B, H, T, Dh = q.shape
    out = torch.zeros(B, H, T, Dh, dtype=x.dtype)
    for t in range(T):
        for s in range(t + 1):
            decay = log_a[:, :, s + 1 : t + 1].sum(-1).exp()  # prod_{r=s+1..t} a_r, (B, H)
            level = 0 if s == t else (t ^ s).bit_length()
            weight = (q[:, :, t] * k[:, :, s]).sum(-1) * decay * lam[:, :, t, level]
            out[:, :, t] += weight[..., None] * v[:, :, s]
    return out


def test_both_forms_equal_the_naive_masked_form():
    mixer = build_float64("log_linear").blocks[0].mixer
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    expected = _naive(mixer, x)
    q, k, v, log_a, lam = mixer._project(x)
    torch.testing.assert_close(mixer._parallel(q, k, v, log_a, lam), expected)
    torch.testing.assert_close(mixer._recurrent(q, k, v, log_a, lam, None, 0)[0], expected)


def test_equal_level_weights_reduce_to_decayed_linear_attention():
    mixer = build_float64("log_linear").blocks[0].mixer
    x = torch.randn(1, 9, 16, dtype=torch.float64)
    q, k, v, log_a, lam = mixer._project(x)
    plain, _ = linear_attention(q, k, v, log_a, mode="recurrent")
    torch.testing.assert_close(mixer._parallel(q, k, v, log_a, torch.ones_like(lam)), plain)
    assert not torch.allclose(mixer._parallel(q, k, v, log_a, lam), plain)  # the levels matter


def test_the_two_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("log_linear"), modes=("parallel", "recurrent"))


def test_cached_decoding_equals_the_whole_with_log_size_state():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("log_linear"))
    assert before == after == 2 * (2 * 2 * 7 * 8 * 8 * 8)  # 7 levels for max_seq_len 64
