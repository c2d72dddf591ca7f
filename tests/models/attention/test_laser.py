"""LASER: log(softmax(QKᵀ/√d) exp(V)) and its gradient against the paper's equation in NumPy float64
(including values too large for a naive exp), the soft-max behaviour, and cached decoding."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.laser import Config, LaserLM, laser_attention


def np_laser(q, k, v):
    """Eq. (4): log(softmax(Q Kᵀ / √d) exp(V)), causal, per head, computed directly."""
    t, d = q.shape[-2], q.shape[-1]
    scores = np.where(np.tril(np.ones((t, t))) > 0, q @ np.swapaxes(k, -1, -2) / math.sqrt(d), -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.log(weights @ np.exp(v))


def test_laser_and_its_gradient_match_the_equation():
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(2, 5, 3)) for _ in range(3)]
    upstream = rng.normal(size=(2, 5, 3))
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = laser_attention(*(t[None] for t in tensors))[0]
    np.testing.assert_allclose(out.detach().numpy(), np_laser(*inputs), rtol=1e-10, atol=1e-12)
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which, tensor in enumerate(tensors):
        for index in [(0, 0, 0), (1, 4, 2), (0, 3, 1), (1, 2, 0)]:
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = ((upstream * np_laser(*plus)).sum() - (upstream * np_laser(*minus)).sum()) / (2 * step)
            assert tensor.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_large_values_stay_finite_and_act_as_a_soft_maximum():
    q = torch.zeros(1, 1, 3, 2)  # equal scores: uniform weights over the visible keys
    v = torch.tensor([[[[1000.0, 0.0], [990.0, 0.0], [500.0, 0.0]]]])  # exp(1000) overflows float32
    out = laser_attention(q, torch.zeros(1, 1, 3, 2), v)
    assert torch.isfinite(out).all()
    # query 2 sees all three: log((e^1000 + e^990 + e^500) / 3) ~ 1000 - log 3 (the max, minus log n)
    assert out[0, 0, 2, 0].item() == pytest.approx(1000 + math.log((1 + math.exp(-10)) / 3), abs=1e-3)


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = (
        LaserLM(Config(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48))
        .double()
        .eval()
    )
    with torch.no_grad():
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), rtol=1e-9, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("laser", tiny=True), LaserLM)
