"""The normalisers of bestiary.layers.attention_variants against the papers' equations written
naively in NumPy float64 (values, and gradients by central differences), and NormalisedAttention's
plumbing against MultiHeadAttention."""

import math

import numpy as np
import pytest
import torch

from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.layers.attention_variants import NormalisedAttention, Softmax, sigmoid_weights, softpick, ssmax
from bestiary.layers.masks import causal_mask

H, T_QUERY, T_KEY = 2, 4, 6  # 2 cached keys before the 4 queries: query i sees 3 + i keys
SCALE = np.array([0.7, 1.3])


def np_ssmax(z):
    """softmax(s_h log(n) z) over the n visible keys of each row (Nakanishi 2025, eq. 2)."""
    out = np.zeros_like(z)
    for h in range(H):
        for i in range(T_QUERY):
            n = T_KEY - T_QUERY + i + 1
            logits = SCALE[h] * math.log(n) * z[h, i, :n]
            out[h, i, :n] = np.exp(logits) / np.exp(logits).sum()
    return out


def np_softpick(z, eps=1e-6):
    """relu(e^z - 1) / (sum |e^z - 1| + eps) over the visible keys (Zuhri et al. 2025, eq. 3)."""
    out = np.zeros_like(z)
    for h in range(H):
        for i in range(T_QUERY):
            n = T_KEY - T_QUERY + i + 1
            e = np.exp(z[h, i, :n]) - 1
            out[h, i, :n] = np.maximum(e, 0) / (np.abs(e).sum() + eps)
    return out


def np_sigmoid(z):
    """sigmoid(z + b) for visible keys, 0 otherwise (Ramapuram et al. 2024, eq. 2)."""
    bias = -math.log(16)
    visible = np.tril(np.ones((T_QUERY, T_KEY)), k=T_KEY - T_QUERY).astype(bool)
    return np.where(visible, 1 / (1 + np.exp(-(z + bias))), 0.0)


TORCH_FUNCTIONS = {
    "ssmax": lambda z, visible: ssmax(z, visible, torch.tensor(SCALE)),
    "softpick": softpick,
    "sigmoid": lambda z, visible: sigmoid_weights(z, visible, -math.log(16)),
}
NUMPY_FUNCTIONS = {"ssmax": np_ssmax, "softpick": np_softpick, "sigmoid": np_sigmoid}


def _numeric_gradient(f, z, upstream, step=1e-6):
    """d(sum(upstream * f(z))) / dz by central differences, in float64."""
    grad = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        plus, minus = z.copy(), z.copy()
        plus[index] += step
        minus[index] -= step
        grad[index] = ((upstream * f(plus)).sum() - (upstream * f(minus)).sum()) / (2 * step)
    return grad


@pytest.mark.parametrize("name", ["ssmax", "softpick", "sigmoid"])
def test_normaliser_and_its_gradient_match_the_papers_equation(name):
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (H, T_QUERY, T_KEY))
    upstream = rng.normal(size=z.shape)
    visible = causal_mask(T_QUERY, T_KEY)
    scores = torch.tensor(z, requires_grad=True)
    weights = TORCH_FUNCTIONS[name](scores[None], visible)[0]
    np.testing.assert_allclose(weights.detach().numpy(), NUMPY_FUNCTIONS[name](z), rtol=1e-10, atol=1e-12)
    (weights * torch.tensor(upstream)).sum().backward()
    expected = _numeric_gradient(NUMPY_FUNCTIONS[name], z, upstream)
    np.testing.assert_allclose(scores.grad.numpy(), expected, rtol=1e-5, atol=1e-8)


def test_ssmax_keeps_a_standout_key_in_focus_as_the_context_grows():
    for n in (10, 1000, 100_000):
        z = torch.zeros(1, 1, 1, n, dtype=torch.float64)
        z[..., 0] = 1.0  # one key scores 1 above the rest
        visible = torch.ones(1, n, dtype=torch.bool)
        peak = ssmax(z, visible, torch.ones(1, dtype=torch.float64))[..., 0].item()
        assert peak == pytest.approx(n / (2 * n - 1))  # n^z / (n^z + n - 1) with z = 1: stays ~ 1/2
        assert z.softmax(-1)[..., 0].item() < 3 / n  # while softmax fades like e / n


def test_softpick_gives_zero_to_non_positive_scores_and_may_sum_below_one():
    z = torch.tensor([[[[-1.0, 0.0, 2.0, -3.0]]]], dtype=torch.float64)
    weights = softpick(z, torch.ones(1, 4, dtype=torch.bool))
    assert weights[..., [0, 1, 3]].abs().max() == 0 and weights[..., 2] > 0
    assert weights.sum() < 1  # |e^z - 1| of the negative scores stays in the denominator
    assert softpick(-z.abs() - 1, torch.ones(1, 4, dtype=torch.bool)).abs().max() == 0  # attend to nothing


def test_softpick_is_finite_for_huge_and_very_negative_scores():
    z = torch.tensor([[[[800.0, 700.0, -800.0]]]], dtype=torch.float64, requires_grad=True)
    weights = softpick(z, torch.ones(1, 3, dtype=torch.bool))
    weights.sum().backward()
    assert torch.isfinite(weights).all() and torch.isfinite(z.grad).all()
    torch.testing.assert_close(weights[0, 0, 0, 0], torch.tensor(1.0, dtype=torch.float64))


def test_sigmoid_rows_start_near_one_with_the_minus_log_n_bias():
    n = 64
    weights = sigmoid_weights(torch.zeros(1, 1, 1, n), torch.ones(1, n, dtype=torch.bool), -math.log(n))
    assert weights.sum().item() == pytest.approx(n / (n + 1))


def test_normalised_attention_with_softmax_is_multi_head_attention():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    reference = MultiHeadAttention(32, 4, n_kv_heads=2, causal=True, rope=rope, bias=False).double()
    ours = NormalisedAttention(32, 4, Softmax(), n_kv_heads=2, rope=rope, bias=False).double()
    ours.load_state_dict(reference.state_dict())
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), reference(x), rtol=1e-10, atol=1e-10)
    cache = ours.init_cache(2)
    pieces = [ours(x[:, :4], cache=cache), ours(x[:, 4:5], cache=cache), ours(x[:, 5:], cache=cache)]
    torch.testing.assert_close(torch.cat(pieces, 1), reference(x), rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError, match="no padding mask"):
        ours(x, mask=torch.ones(2, 7, dtype=torch.bool))
