"""Differential Transformer: DIFF attention and its gradient against the paper's equations in NumPy
float64, the whole mixer (λ reparameterisation, headwise RMSNorm, (1 - λ_init)) against a NumPy
forward, λ_init's schedule, and cached decoding == the full forward."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.diff_transformer import (
    Config,
    DifferentialAttention,
    DifferentialAttentionV2,
    DiffTransformer,
    differential_attention,
    lambda_init,
)


def _softmax_causal(scores):
    t = scores.shape[-1]
    scores = np.where(np.tril(np.ones((t, t))) > 0, scores, -np.inf)
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_diff_attention(q1, k1, q2, k2, v, lam):
    """Eq. (1): (softmax(Q1 K1ᵀ/√d) − λ softmax(Q2 K2ᵀ/√d)) V, per head."""
    d = q1.shape[-1]
    map1 = _softmax_causal(q1 @ np.swapaxes(k1, -1, -2) / math.sqrt(d))
    map2 = _softmax_causal(q2 @ np.swapaxes(k2, -1, -2) / math.sqrt(d))
    return (map1 - lam * map2) @ v


def test_diff_attention_and_its_gradient_match_the_equation():
    rng = np.random.default_rng(0)
    shapes = [(2, 5, 3)] * 4 + [(2, 5, 6)]  # (H, T, d) for q1, k1, q2, k2; v is 2d wide
    inputs = [rng.normal(size=s) for s in shapes]
    lam = 0.37
    upstream = rng.normal(size=(2, 5, 6))
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = differential_attention(*(t[None] for t in tensors), torch.tensor(lam, dtype=torch.float64))[0]
    np.testing.assert_allclose(out.detach().numpy(), np_diff_attention(*inputs, lam), rtol=1e-10, atol=1e-12)
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which, tensor in enumerate(tensors):
        for index in [(0, 0, 0), (1, 4, 2), (0, 2, 1)]:
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = (
                (upstream * np_diff_attention(*plus, lam)).sum()
                - (upstream * np_diff_attention(*minus, lam)).sum()
            ) / (2 * step)
            assert tensor.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_lambda_init_schedule():
    assert lambda_init(0) == pytest.approx(0.2)  # 0.8 - 0.6 for the first layer
    assert lambda_init(9) == pytest.approx(0.8 - 0.6 * math.exp(-2.7))
    assert lambda_init(100) == pytest.approx(0.8)


def test_mixer_matches_a_numpy_forward_of_the_paper():
    torch.manual_seed(0)
    d_model, n_heads, d = 16, 2, 4
    mixer = DifferentialAttention(d_model, n_heads, layer_index=3).double()  # no RoPE: positions aside
    with torch.no_grad():
        mixer.head_norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(1, 6, d_model, dtype=torch.float64)
    w = {name: p.detach().numpy() for name, p in mixer.named_parameters()}
    xs = x[0].numpy()
    lam = math.exp(w["lambda_q1"] @ w["lambda_k1"]) - math.exp(w["lambda_q2"] @ w["lambda_k2"])
    lam += 0.8 - 0.6 * math.exp(-0.3 * 3)
    heads = []
    for h in range(n_heads):
        q = xs @ w["q_proj.weight"].T[:, h * 2 * d : (h + 1) * 2 * d]  # head h: [Q1 | Q2]
        k = xs @ w["k_proj.weight"].T[:, h * 2 * d : (h + 1) * 2 * d]
        v = xs @ w["v_proj.weight"].T[:, h * 2 * d : (h + 1) * 2 * d]
        head = np_diff_attention(q[:, :d], k[:, :d], q[:, d:], k[:, d:], v, lam)
        head = head / np.sqrt((head**2).mean(-1, keepdims=True) + 1e-5) * w["head_norm.weight"]
        heads.append((1 - (0.8 - 0.6 * math.exp(-0.9))) * head)
    expected = np.concatenate(heads, -1) @ w["out_proj.weight"].T
    # bestiary's RMSNorm computes in float32 even for float64 inputs: hence 1e-6, not 1e-10
    np.testing.assert_allclose(mixer(x)[0].detach().numpy(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("version, n_kv_heads", [(1, None), (2, None), (2, 1)])
def test_cached_decoding_equals_the_full_forward(version, n_kv_heads):
    torch.manual_seed(0)
    config = Config(
        vocab_size=40, d_model=32, n_layers=2, n_heads=2, d_ff=48, version=version, n_kv_heads=n_kv_heads
    )
    model = DiffTransformer(config).double().eval()
    with torch.no_grad():
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)


def test_bad_head_split_is_refused():
    with pytest.raises(ValueError, match="4 \\* n_heads"):
        bestiary.build("diff_transformer", tiny=True, d_model=40, n_heads=4, version=1)


def test_v2_mixer_matches_the_equations_written_out():
    # 2h query heads over h_kv key/value heads; pairs (2i, 2i+1) share keys and values and are subtracted
    torch.manual_seed(0)
    d_model, h, h_kv, d, T = 16, 4, 2, 4, 7
    mixer = DifferentialAttentionV2(d_model, h, n_kv_heads=h_kv, head_dim=d).double()
    x = torch.randn(1, T, d_model, dtype=torch.float64)
    q = (x @ mixer.q_proj.weight.T).view(T, 2 * h, d)
    k = (x @ mixer.k_proj.weight.T).view(T, h_kv, d)
    v = (x @ mixer.v_proj.weight.T).view(T, h_kv, d)
    lam = torch.sigmoid(x[0] @ mixer.lambda_proj.weight.T)  # (T, h)
    group = 2 * h // h_kv  # query heads per key/value head
    out = torch.zeros(T, h, d, dtype=torch.float64)
    for i in range(h):
        maps = []
        for head in (2 * i, 2 * i + 1):
            kv = head // group
            scores = q[:, head] @ k[:, kv].T / d**0.5
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            maps.append(scores.softmax(-1) @ v[:, kv])
        out[:, i] = maps[0] - lam[:, i : i + 1] * maps[1]
    expected = out.reshape(T, h * d) @ mixer.out_proj.weight.T
    torch.testing.assert_close(mixer(x)[0], expected)


def test_v2_with_a_closed_lambda_gate_is_ordinary_attention_of_the_even_heads():
    torch.manual_seed(0)
    mixer = DifferentialAttentionV2(16, 2, n_kv_heads=2, head_dim=8).double()
    with torch.no_grad():
        mixer.lambda_proj.weight.zero_()
        mixer.lambda_proj.weight[:, 0] = -1e4  # sigmoid(λ) -> 0 for positive x[..., 0]
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    x[..., 0] = x[..., 0].abs() + 1
    q = mixer._split_heads(mixer.q_proj(x), 4)[:, 0::2]  # the first head of each pair
    k, v = mixer._split_heads(mixer.k_proj(x), 2), mixer._split_heads(mixer.v_proj(x), 2)
    plain = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)  # (1, 2, 5, 8)
    expected = mixer.out_proj(plain.transpose(1, 2).reshape(1, 5, 16))
    torch.testing.assert_close(mixer(x), expected)
