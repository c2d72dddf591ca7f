"""Temporal attention: the additive (Bahdanau) and multiplicative (Luong general, dot) scores and the
attentional state, values and gradients, against the papers' equations as NumPy float64 loops;
cached step-by-step processing == the whole sequence."""

import numpy as np
import pytest
import torch

import bestiary
from bestiary.models.attention.attention import Config, TemporalAttention, TemporalAttentionRNN


def np_temporal_attention(h, weights, score):
    """h̃_t = tanh(W_c [sum_{j<=t} softmax_j(e_tj) h_j ; h_t]) with e_tj from the chosen score."""
    T = h.shape[0]
    out = np.zeros_like(h)
    for t in range(T):
        e = np.zeros(t + 1)
        for j in range(t + 1):
            if score == "additive":  # Bahdanau eq. (6): vᵀ tanh(W h_t + U h_j)
                e[j] = weights["v.weight"][0] @ np.tanh(
                    weights["query_proj.weight"] @ h[t] + weights["key_proj.weight"] @ h[j]
                )
            elif score == "general":  # Luong eq. (8): h_tᵀ W h_j
                e[j] = h[t] @ weights["bilinear.weight"] @ h[j]
            else:
                e[j] = h[t] @ h[j]
        a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
        context = a @ h[: t + 1]
        out[t] = np.tanh(weights["combine.weight"] @ np.concatenate([context, h[t]]))  # Luong eq. (5)
    return out


@pytest.mark.parametrize("score", ["additive", "general", "dot"])
def test_scores_and_gradients_match_the_equations(score):
    torch.manual_seed(0)
    layer = TemporalAttention(4, score).double()
    weights = {name: p.detach().numpy() for name, p in layer.named_parameters()}
    rng = np.random.default_rng(0)
    h, upstream = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    ht = torch.tensor(h, requires_grad=True)
    out = layer(ht[None], ht[None])[0]
    np.testing.assert_allclose(
        out.detach().numpy(), np_temporal_attention(h, weights, score), rtol=1e-10, atol=1e-12
    )
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for index in [(0, 0), (3, 2), (5, 3)]:
        plus, minus = h.copy(), h.copy()
        plus[index] += step
        minus[index] -= step
        numeric = (
            (upstream * np_temporal_attention(plus, weights, score)).sum()
            - (upstream * np_temporal_attention(minus, weights, score)).sum()
        ) / (2 * step)
        assert ht.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("score", ["additive", "general", "dot"])
def test_step_by_step_with_the_cache_equals_the_whole_sequence(score):
    torch.manual_seed(0)
    model = TemporalAttentionRNN(Config(in_dim=3, d_model=8, n_layers=2, score=score)).double().eval()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(2)
        steps = [model(x[:, :4], cache=cache)] + [model(x[:, t : t + 1], cache=cache) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-12)
    assert cache.length == 9
    with pytest.raises(ValueError, match="made for batch 2"):
        model(x[:1], cache=cache)


def test_registered():
    assert isinstance(bestiary.build("attention", tiny=True), TemporalAttentionRNN)
