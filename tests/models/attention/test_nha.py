"""NHA: the mixer against the paper's equations as NumPy float64 loops (slots written with tokens as they
leave the window, one softmax over slots and window), values and input gradients; window >= length
is plain causal attention; cached decoding == the full forward."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers import MultiHeadAttention
from bestiary.models.attention.nha import NHA, Config, NativeHybridAttention

D, H, M, W = 8, 2, 3, 2
DH = D // H


def np_nha(x, w):
    T = x.shape[0]
    q, k, v = (x @ w[f"{n}_proj.weight"].T for n in "qkv")
    gates = 1 / (1 + np.exp(-(x @ w["gate_proj.weight"].T + w["gate_proj.bias"])))  # (T, H*M)
    out = np.zeros((T, D))
    for h in range(H):
        cols = slice(h * DH, (h + 1) * DH)
        slot_k, slot_v = np.zeros((M, DH)), np.zeros((M, DH))
        for t in range(T):
            if t - W >= 0:  # token t - W leaves the window: write it into the slots
                a = gates[t - W, h * M : (h + 1) * M][:, None]
                slot_k = a * slot_k + (1 - a) * k[t - W, cols]
                slot_v = a * slot_v + (1 - a) * v[t - W, cols]
            window = range(max(0, t - W + 1), t + 1)
            scores = [q[t, cols] @ k[j, cols] / math.sqrt(DH) for j in window]
            values = [v[j, cols] for j in window]
            if t >= W:  # the slots hold something: they compete in the same softmax
                scores += list(slot_k @ q[t, cols] / math.sqrt(DH))
                values += list(slot_v)
            p = np.exp(np.array(scores) - max(scores))
            out[t, cols] = (p / p.sum()) @ np.array(values)
    return out @ w["out_proj.weight"].T


def test_matches_the_equations_with_input_gradients():
    torch.manual_seed(0)
    mixer = NativeHybridAttention(D, H, window=W, n_slots=M).double()
    w = {name: p.detach().numpy() for name, p in mixer.named_parameters()}
    rng = np.random.default_rng(0)
    x, upstream = rng.normal(size=(7, D)), rng.normal(size=(7, D))
    xt = torch.tensor(x, requires_grad=True)
    out = mixer(xt[None])[0]
    np.testing.assert_allclose(out.detach().numpy(), np_nha(x, w), rtol=1e-10, atol=1e-12)
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for index in [(0, 0), (2, 5), (6, 7)]:
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric = ((upstream * np_nha(plus, w)).sum() - (upstream * np_nha(minus, w)).sum()) / (2 * step)
        assert xt.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_a_window_as_long_as_the_sequence_is_plain_causal_attention():
    torch.manual_seed(0)
    nha = NativeHybridAttention(16, 2, window=8, n_slots=3).double()
    plain = MultiHeadAttention(16, 2, causal=True, bias=False).double()
    plain.load_state_dict(nha.state_dict(), strict=False)
    x = torch.randn(2, 8, 16, dtype=torch.float64)
    torch.testing.assert_close(nha(x), plain(x), rtol=1e-10, atol=1e-12)


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = (
        NHA(Config(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, window=3, n_slots=2))
        .double()
        .eval()
    )
    tokens = torch.randint(0, 40, (2, 10))
    with torch.no_grad():
        assert_cached_equals_full(model, tokens, split=1, rtol=1e-10, atol=1e-10)
        assert_cached_equals_full(model, tokens, split=5, rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("nha", tiny=True), NHA)
