"""Position encodings vs their papers' formulas and vs `transformers`' implementations."""

import math

import numpy as np
import pytest
import torch

from bestiary.layers import LearnedPositions, RotaryEmbedding, SinusoidalPositions, alibi_bias, alibi_slopes
from bestiary.layers.positions import RelativePositionBias, relative_position_bucket, rotate_half


def test_sinusoidal_matches_the_paper_formula():
    d, P = 16, 50
    table = SinusoidalPositions(d, max_seq_len=P)(P).numpy()
    expected = np.zeros((P, d))
    for pos in range(P):
        for i in range(0, d, 2):  # PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(...)
            expected[pos, i] = math.sin(pos / 10000 ** (i / d))
            expected[pos, i + 1] = math.cos(pos / 10000 ** (i / d))
    np.testing.assert_allclose(table, expected, atol=1e-5)
    np.testing.assert_allclose(SinusoidalPositions(d, P)(3, start_pos=10).numpy(), expected[10:13], atol=1e-5)


def test_position_tables_refuse_positions_beyond_their_length():
    with pytest.raises(ValueError, match="max_seq_len"):
        LearnedPositions(8, 4)(5, start_pos=4)
    with pytest.raises(ValueError, match="max_seq_len"):
        SinusoidalPositions(4, 8)(9)


def test_rope_dot_products_depend_only_on_the_offset():
    rope = RotaryEmbedding(16)
    q, k = torch.randn(1, 1, 1, 16).double(), torch.randn(1, 1, 1, 16).double()

    def score(p, s):
        return (rope(q, torch.tensor([p])) * rope(k, torch.tensor([s]))).sum().item()

    for p, s in [(0, 3), (5, 1), (7, 7)]:
        for shift in (1, 10, 123):
            assert score(p, s) == pytest.approx(score(p + shift, s + shift), rel=1e-5, abs=1e-5)
    assert score(0, 3) != pytest.approx(score(0, 4), rel=1e-3)  # and it does depend on the offset


def test_rope_preserves_norms_and_position_zero_is_identity():
    rope = RotaryEmbedding(8)
    x = torch.randn(2, 3, 5, 8)
    out = rope(x, torch.arange(5))
    torch.testing.assert_close(out.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(out[:, :, 0], x[:, :, 0])
    torch.testing.assert_close(rotate_half(rotate_half(x)), -x)  # two quarter turns = half turn


def test_rope_matches_transformers_llama():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding, apply_rotary_pos_emb

    cfg = LlamaConfig(hidden_size=64, num_attention_heads=4, rope_theta=500.0)
    cfg.rope_parameters = {"rope_type": "default", "rope_theta": 500.0}
    hf = LlamaRotaryEmbedding(cfg)
    q, k = torch.randn(2, 4, 9, 16), torch.randn(2, 4, 9, 16)
    positions = torch.arange(3, 12)
    cos, sin = hf(q, positions[None].expand(2, -1))
    q_ref, k_ref = apply_rotary_pos_emb(q, k, cos, sin)
    ours = RotaryEmbedding(16, theta=500.0)
    torch.testing.assert_close(ours(q, positions), q_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours(k, positions), k_ref, atol=1e-5, rtol=1e-5)


def test_rope_context_extension_hooks():
    x = torch.randn(1, 1, 4, 16)
    base, linear = RotaryEmbedding(16), RotaryEmbedding(16, scaling_factor=4.0, scaling_type="linear")
    # position interpolation: position p with factor 4 is position p/4 unscaled
    torch.testing.assert_close(linear(x, torch.tensor([0, 4, 8, 12])), base(x, torch.tensor([0, 1, 2, 3])))
    # NTK-aware: the highest frequency is kept, the lowest is slowed down by exactly the factor
    ntk = RotaryEmbedding(16, scaling_factor=4.0, scaling_type="ntk")
    assert ntk.inv_freq[0] == pytest.approx(base.inv_freq[0].item())
    assert ntk.inv_freq[-1] == pytest.approx(base.inv_freq[-1].item() / 4, rel=1e-5)
    # a callable rewrites the frequencies: halving them equals linear scaling by 2
    halved = RotaryEmbedding(16, scaling=lambda f: f / 2)
    torch.testing.assert_close(
        halved(x, torch.arange(4)), RotaryEmbedding(16, scaling_factor=2.0)(x, torch.arange(4))
    )
    with pytest.raises(ValueError, match="scaling_type"):
        RotaryEmbedding(16, scaling_type="yarn")


def test_alibi_slopes_follow_the_paper():
    # power of two: the geometric sequence 2^(-8/n), 2^(-16/n), ... (Press et al., Sec. 3)
    assert alibi_slopes(8).tolist() == pytest.approx([2 ** -(i + 1) for i in range(8)])
    assert alibi_slopes(4).tolist() == pytest.approx([2 ** (-2 * (i + 1)) for i in range(4)])


@pytest.mark.parametrize("n_heads", [4, 6, 12])
def test_alibi_matches_transformers_bloom(n_heads):
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    T = 7
    # BLOOM adds slope * key_position; softmax is shift-invariant per row, so compare after
    # subtracting the query's own position: -slope * (i - j) == slope * j - slope * i
    bloom = build_alibi_tensor(torch.ones(1, T), n_heads, torch.float32).view(n_heads, 1, T)  # (H, 1, Tk)
    ours = alibi_bias(n_heads, T, T)  # (H, Tq, Tk)
    torch.testing.assert_close(ours, bloom - bloom.transpose(1, 2), atol=1e-6, rtol=0)  # (H, Tq, Tk)
    torch.testing.assert_close(alibi_slopes(n_heads), bloom[:, 0, 1])  # BLOOM's position 1 holds the slope


@pytest.mark.parametrize("bidirectional", [True, False])
def test_t5_buckets_match_transformers(bidirectional):
    from transformers.models.t5.modeling_t5 import T5Attention

    rel = torch.arange(-300, 300)[None, :]
    ref = T5Attention._relative_position_bucket(
        rel, bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    torch.testing.assert_close(relative_position_bucket(rel, bidirectional, 32, 128), ref)
    assert RelativePositionBias(3)(4, 6).shape == (1, 3, 4, 6)


def test_rope_table_is_cached_per_device_and_matches_the_formula():
    """cos_sin keeps one inv_freq per device: a meta-device call first must not leak into CPU results."""
    rope = RotaryEmbedding(8, theta=100.0)
    meta_cos, _ = rope.cos_sin(torch.arange(3, device="meta"))
    assert meta_cos.device.type == "meta"
    cos, sin = rope.cos_sin(torch.arange(3))
    inv_freq = 100.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    angles = torch.arange(3, dtype=torch.float64)[:, None] * inv_freq  # (T, D/2)
    torch.testing.assert_close(cos, torch.cat([angles, angles], -1).cos().float())
    torch.testing.assert_close(sin, torch.cat([angles, angles], -1).sin().float())
    assert set(rope._inv_freq_on) == {torch.device("meta"), torch.device("cpu")}
