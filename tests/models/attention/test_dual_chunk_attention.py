"""Dual Chunk Attention: inside one chunk it is plain RoPE attention (same weights); the distances
its position indices produce never exceed the pretrained length, and follow the paper's three
cases; the mixer equals per-pair rotations in float64; cached decoding equals the full forward."""

import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.positions import RotaryEmbedding
from bestiary.models.attention.dual_chunk_attention import DualChunkAttention, dca_query_positions

S, W = 4, 2  # chunk 4, window 2: pretrained length c = 6


def _pair():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    dca = DualChunkAttention(32, 4, n_kv_heads=2, chunk_size=S, window=W, rope=rope, bias=False).double()
    plain = MultiHeadAttention(32, 4, n_kv_heads=2, bias=False, causal=True, rope=rope).double()
    plain.load_state_dict(dca.state_dict())
    return dca, plain


def test_a_sequence_inside_one_chunk_is_plain_rope_attention():
    dca, plain = _pair()
    x = torch.randn(2, S, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(dca(x), plain(x))
        long = torch.randn(2, 3 * S, 32, dtype=torch.float64)
        torch.testing.assert_close(dca(long)[:, :S], plain(long)[:, :S])  # the first chunk: unchanged
        assert not torch.allclose(dca(long)[:, 2 * S :], plain(long)[:, 2 * S :])  # past c: re-indexed


def test_distances_never_exceed_the_pretrained_length_and_follow_the_three_cases():
    T = 40  # many chunks, far beyond c = 6
    pos = torch.arange(T)
    position, case = dca_query_positions(pos, pos, S, W)
    distance = position - (pos % S)[None, :]  # query index - key index
    causal = pos[None, :] <= pos[:, None]
    assert distance[causal].min() >= 0 and distance[causal].max() <= S + W - 1
    for i in range(T):
        for j in range(i + 1):
            if i // S == j // S:  # same chunk: the true distance
                assert case[i, j] == 0 and distance[i, j] == i - j
            elif i // S == j // S + 1:  # previous chunk: true distance while the query is in the window
                assert case[i, j] == 1
                if i % S < W:
                    assert distance[i, j] == i - j
                else:
                    assert position[i, j] == S + W - 1
            else:  # far: the query sits at c - 1
                assert case[i, j] == 2 and position[i, j] == S + W - 1
                assert distance[i, j] >= W  # "far but trained": at least c - s


def _rotate(x, p):
    """RoPE by hand in float64: pair i is (x[i], x[i + D/2]) turned by p * theta^(-2i/D)."""
    half = x.shape[-1] // 2
    angle = p * 10000.0 ** (-torch.arange(half, dtype=torch.float64) / half)
    x1, x2 = x[:half], x[half:]
    return torch.cat([x1 * angle.cos() - x2 * angle.sin(), x1 * angle.sin() + x2 * angle.cos()])


def test_dca_equals_per_pair_rotations_in_float64():
    dca, _ = _pair()
    T = 11
    x = torch.randn(1, T, 32, dtype=torch.float64)
    q = dca.q_proj(x).view(T, 4, 8)
    k = dca.k_proj(x).view(T, 2, 8).repeat_interleave(2, dim=1)
    v = dca.v_proj(x).view(T, 2, 8).repeat_interleave(2, dim=1)
    position, _ = dca_query_positions(torch.arange(T), torch.arange(T), S, W)
    out = torch.zeros(T, 4, 8, dtype=torch.float64)
    for h in range(4):
        for i in range(T):
            scores = torch.stack(
                [
                    _rotate(q[i, h], float(position[i, j])) @ _rotate(k[j, h], float(j % S))
                    for j in range(i + 1)
                ]
            )
            out[i, h] = torch.softmax(scores / 8**0.5, 0) @ v[: i + 1, h]
    with torch.no_grad():
        # tolerance: the library's RoPE rotates in float32
        torch.testing.assert_close(dca(x), dca.out_proj(out.reshape(1, T, 32)), atol=1e-5, rtol=1e-5)


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("dual_chunk_attention", tiny=True).double().eval()
    tokens = torch.randint(0, 64, (2, 15))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=5)
