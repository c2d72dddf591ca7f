"""FoX: forgetting attention and its gradient against the paper's equation in NumPy float64 (products
of forget gates written out, no cumulative-sum trick), f = 1 gives plain softmax attention, and
cached decoding (which carries the cumulative log gates) equals the full forward."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers import MultiHeadAttention
from bestiary.models.attention.fox import (
    Config,
    ForgettingAttention,
    ForgettingTransformer,
    forgetting_attention,
)


def np_fox(q, k, v, log_f):
    """Eq. (4): o_i = sum_j exp(q_i.k_j/√d) F_ij v_j / sum_j exp(q_i.k_j/√d) F_ij,
    F_ij = prod_{l=j+1..i} f_l."""
    heads, t, d = q.shape
    out = np.zeros_like(v)
    for h in range(heads):
        for i in range(t):
            gates = np.array([np.prod(np.exp(log_f[h, j + 1 : i + 1])) for j in range(i + 1)])
            w = np.exp(q[h, i] @ k[h, : i + 1].T / math.sqrt(d)) * gates
            out[h, i] = w @ v[h, : i + 1] / w.sum()
    return out


def _fox(q, k, v, log_f):
    decay = log_f.cumsum(-1)
    return forgetting_attention(q[None], k[None], v[None], decay[None], decay[None])[0]


def test_forgetting_attention_and_its_gradient_match_the_equation():
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 5, 3)) for _ in range(3)] + [np.log(rng.uniform(0.2, 1.0, (2, 5)))]
    upstream = rng.normal(size=(2, 5, 3))
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = _fox(*tensors)
    np.testing.assert_allclose(out.detach().numpy(), np_fox(*inputs), rtol=1e-10, atol=1e-12)
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which, tensor in enumerate(tensors):
        for index in [(0, 0, 0), (1, 4, 2), (0, 3, 1)] if which < 3 else [(0, 1), (1, 3), (0, 4)]:
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = ((upstream * np_fox(*plus)).sum() - (upstream * np_fox(*minus)).sum()) / (2 * step)
            assert tensor.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_a_gate_stuck_open_is_plain_softmax_attention():
    torch.manual_seed(0)
    fox = ForgettingAttention(16, 2).double()
    plain = MultiHeadAttention(16, 2, causal=True, bias=False).double()
    plain.load_state_dict(fox.state_dict(), strict=False)
    with torch.no_grad():
        fox.forget_proj.weight.zero_()
        fox.forget_proj.bias.fill_(50.0)  # f = sigmoid(50) = 1 - 2e-22: nothing is forgotten
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    torch.testing.assert_close(fox(x), plain(x), rtol=1e-10, atol=1e-12)


def test_cached_decoding_equals_the_full_forward_and_keeps_one_decay_per_key():
    torch.manual_seed(0)
    model = ForgettingTransformer(
        Config(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48)
    )
    model = model.double().eval()
    with torch.no_grad():
        cache = assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)
    assert cache[0].extras["log_decay"].shape == (2, 4, 9, 1)


def test_registered():
    assert isinstance(bestiary.build("fox", tiny=True), ForgettingTransformer)
