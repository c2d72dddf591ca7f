"""MTA: the key-query and head-mixing convolutions and their gradient against the paper's equations
written as loops in NumPy float64, identity init == plain attention, and cached decoding == full."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.models.attention.mta import MTA, Config, MultiTokenAttention, multi_token_attention

H, T, D, C_Q, C_K, C_H = 4, 6, 3, 2, 3, 2


def np_mta(q, k, v, kernel, head_mix):
    """Eq. (3)-(5): a_ij = softmax_j(sum_{i',j'} 1[key j-j' <= query i-i'] θ_{i'j'} q_{i-i'}·k_{j-j'} / √d)
    for j <= i, then Â_h = sum_h' M_{hh'} A_h' within each group of C_H heads, then Â V."""
    left = (C_K + 1) // 2 - 1  # kernel column of key j itself
    weights = np.zeros((H, T, T))
    for h in range(H):
        for i in range(T):
            logits = np.full(T, -np.inf)
            for j in range(i + 1):
                total = 0.0
                for a in range(C_Q):
                    for b in range(C_K):
                        row, col = i + a - (C_Q - 1), j + b - left
                        if row >= 0 and 0 <= col < T and col <= row:  # Mask_0 at the source
                            total += kernel[h, a, b] * q[h, row] @ k[h, col] / math.sqrt(D)
                logits[j] = total
            weights[h, i] = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    mixed = np.zeros_like(weights)
    for h in range(H):
        g, r = divmod(h, C_H)
        mixed[h] = sum(head_mix[g, r, s] * weights[g * C_H + s] for s in range(C_H))
    return mixed @ v


def test_mta_and_its_gradient_match_the_equations():
    rng = np.random.default_rng(0)
    inputs = [rng.normal(size=(H, T, D)) for _ in range(3)]
    inputs += [rng.normal(size=(H, C_Q, C_K)), rng.normal(size=(H // C_H, C_H, C_H))]
    upstream = rng.normal(size=(H, T, D))
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out = multi_token_attention(*(t[None] for t in tensors[:3]), tensors[3], tensors[4])[0]
    np.testing.assert_allclose(out.detach().numpy(), np_mta(*inputs), rtol=1e-10, atol=1e-12)
    (out * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which, tensor in enumerate(tensors):
        for index in [(0, 0, 0), (1, 1, 1), (1, 0, 1)]:
            plus = [a.copy() for a in inputs]
            minus = [a.copy() for a in inputs]
            plus[which][index] += step
            minus[which][index] -= step
            numeric = ((upstream * np_mta(*plus)).sum() - (upstream * np_mta(*minus)).sum()) / (2 * step)
            assert tensor.grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_identity_init_is_plain_attention():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8)
    mta = MultiTokenAttention(32, 4, query_kernel=3, key_kernel=5, head_group=2, rope=rope).double()
    plain = MultiHeadAttention(32, 4, causal=True, bias=False, rope=rope).double()
    plain.load_state_dict(mta.state_dict(), strict=False)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    torch.testing.assert_close(mta(x), plain(x), rtol=1e-10, atol=1e-12)


def test_cached_decoding_equals_the_full_forward_with_trained_kernels():
    torch.manual_seed(0)
    config = Config(
        vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, query_kernel=3, key_kernel=4
    )
    model = MTA(config).double().eval()
    with torch.no_grad():
        for block in model.blocks:  # away from the identity, so the convolutions matter
            block.mixer.kernel.normal_()
            block.mixer.head_mix.normal_()
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), split=1, rtol=1e-10, atol=1e-10)
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), split=5, rtol=1e-10, atol=1e-10)


def test_heads_must_split_into_groups():
    with pytest.raises(ValueError, match="multiple of head_group"):
        bestiary.build("mta", tiny=True, head_group=3)
