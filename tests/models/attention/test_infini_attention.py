"""Infini-attention: the parallel (prefix-sum) form equals the segment recurrence in values and
gradients; the memory after reading a sequence equals the paper's update summed over its segments
(linear and delta, float64); one segment is causal softmax attention mixed with an empty memory;
reading in pieces or token by token equals reading whole."""

import pytest
import torch
import torch.nn.functional as F
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
from bestiary.models.attention.infini_attention import InfiniAttention


def _mixer(rule="linear", mode="recurrent", segment_size=4):
    torch.manual_seed(0)
    mixer = InfiniAttention(
        16, 2, segment_size=segment_size, memory_update=rule, mode=mode, rope=RotaryEmbedding(8)
    )
    with torch.no_grad():
        mixer.memory_gate.copy_(torch.tensor([-0.5, 1.0]))  # a different mix per head
    return mixer.double()


def test_parallel_form_equals_the_recurrence_in_values_and_gradients():
    recurrent, parallel = _mixer(mode="recurrent"), _mixer(mode="parallel")
    x = torch.randn(2, 11, 16, dtype=torch.float64, requires_grad=True)  # 3 segments, the last short
    out_r, out_p = recurrent(x), parallel(x)
    torch.testing.assert_close(out_p, out_r)
    grads_r = torch.autograd.grad(out_r.square().sum(), [x, *recurrent.parameters()])
    grads_p = torch.autograd.grad(out_p.square().sum(), [x, *parallel.parameters()])
    for got, want in zip(grads_p, grads_r):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_memory_equals_the_papers_update_over_segments(rule):
    mixer = _mixer(rule)
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    cache = mixer.init_cache(1)
    with torch.no_grad():
        mixer(x, cache=cache)
        k = mixer.k_proj(x).view(1, 12, 2, 8).transpose(1, 2)
        v = mixer.v_proj(x).view(1, 12, 2, 8).transpose(1, 2)
    sigma = lambda t: F.elu(t) + 1  # noqa: E731
    M, z = torch.zeros(1, 2, 8, 8, dtype=torch.float64), torch.zeros(1, 2, 8, dtype=torch.float64)
    for s in range(3):
        ks, vs = sigma(k[..., 4 * s : 4 * s + 4, :]), v[..., 4 * s : 4 * s + 4, :]
        if rule == "delta" and s > 0:  # V - σ(K) M / σ(K) z
            vs = vs - (ks @ M) / (ks @ z[..., None])
        M, z = M + ks.transpose(-2, -1) @ vs, z + ks.sum(-2)
    if rule == "linear":  # the one-shot sum over every key
        torch.testing.assert_close(M, sigma(k).transpose(-2, -1) @ v)
    torch.testing.assert_close(cache["memory"], M)
    torch.testing.assert_close(cache["normaliser"], z)
    assert cache["segment_keys"].shape[-2] == 0  # 12 = 3 whole segments: nothing pending


def test_one_segment_is_causal_attention_mixed_with_an_empty_memory():
    mixer = _mixer(segment_size=16)
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    with torch.no_grad():
        q, k, v = (p(x).view(2, 9, 2, 8).transpose(1, 2) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
        cos, sin = mixer.rope.cos_sin(torch.arange(9))
        local = F.scaled_dot_product_attention(
            apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v, is_causal=True
        )
        gate = torch.sigmoid(mixer.memory_gate)[:, None, None]
        expected = mixer.out_proj(((1 - gate) * local).transpose(1, 2).reshape(2, 9, 16))
        torch.testing.assert_close(mixer(x), expected, atol=1e-6, rtol=1e-6)  # RoPE rotates in float32


@pytest.mark.parametrize("rule", ["linear", "delta"])
def test_reading_in_pieces_equals_reading_whole(rule):
    mixer = _mixer(rule)
    x = torch.randn(2, 13, 16, dtype=torch.float64)
    with torch.no_grad():
        whole = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, a:b], cache=cache) for a, b in ((0, 3), (3, 9), (9, 10), (10, 13))]
    torch.testing.assert_close(torch.cat(pieces, dim=1), whole)


def test_the_lm_decodes_token_by_token_like_its_full_forward():
    torch.manual_seed(0)
    model = bestiary.build("infini_attention", tiny=True).double().eval()  # segments of 4
    tokens = torch.randint(0, 64, (2, 11))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=3)


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="parallel"):
        bestiary.build("infini_attention", tiny=True, mode="parallel", memory_update="delta")
    with pytest.raises(ValueError, match="divisible by n_heads"):
        InfiniAttention(18, 4, segment_size=4)
