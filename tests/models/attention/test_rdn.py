"""RDN: the delta-rule recurrence of both memories against the equations in NumPy float64 (outputs,
final states, input gradients), the delta rule's exact recall, and cached decoding."""

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full
from residual_attention_helpers import np_residual_attention, random_inputs

import bestiary
from bestiary.layers.attention_variants import residual_linear_attention_recurrent
from bestiary.models.attention.rdn import RDN, Config

CLIP = 0.5


def test_matches_the_equations_with_gradients():
    rng = np.random.default_rng(0)
    inputs = random_inputs(rng)
    expected, finals = np_residual_attention(*inputs, delta=True, clip=CLIP)
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out, (base, aux) = residual_linear_attention_recurrent(*(t[None] for t in tensors), delta=True, clip=CLIP)
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(base[0, 0].detach().numpy(), finals[0][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(aux[0, 0].detach().numpy(), finals[0][1], rtol=1e-10, atol=1e-12)
    upstream = rng.normal(size=expected.shape)
    (out[0] * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which in range(6):
        index = (1, 3, 2)[: inputs[which].ndim]
        plus, minus = [a.copy() for a in inputs], [a.copy() for a in inputs]
        plus[which][index] += step
        minus[which][index] -= step
        numeric = (
            (upstream * np_residual_attention(*plus, delta=True, clip=CLIP)[0]).sum()
            - (upstream * np_residual_attention(*minus, delta=True, clip=CLIP)[0]).sum()
        ) / (2 * step)
        assert tensors[which].grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_the_delta_rule_recalls_what_it_wrote_and_the_residual_is_what_it_got_wrong():
    # β = 1, α = 1, a unit key: after writing v1, S k = v1 exactly; writing v2 under the same key
    # then sees the clipped error v2 - v1 as its residual, which R stores
    k = torch.tensor([[[[0.6, 0.8], [0.6, 0.8]]]], dtype=torch.float64)  # (B, H, T, Dk)
    v = torch.tensor([[[[1.0, -2.0], [1.3, -1.0]]]], dtype=torch.float64)
    ones = torch.ones(1, 1, 2, dtype=torch.float64)
    zero_gamma = torch.tensor([[[0.0, 1.0]]], dtype=torch.float64)  # only the second residual is written
    out, (base, aux) = residual_linear_attention_recurrent(
        k, k, v, ones, ones, zero_gamma, delta=True, clip=0.5
    )
    torch.testing.assert_close((base @ k[0, 0, 0])[0, 0], v[0, 0, 1])  # the latest value, exactly
    torch.testing.assert_close((aux @ k[0, 0, 0])[0, 0], torch.tensor([0.3, 0.5], dtype=torch.float64))


def test_cached_decoding_equals_the_full_forward_with_a_constant_size_state():
    torch.manual_seed(0)
    model = RDN(Config(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32)).double().eval()
    with torch.no_grad():
        cache = assert_cached_equals_full(
            model, torch.randint(0, 40, (2, 9)), split=4, rtol=1e-10, atol=1e-10
        )
    assert cache[0]["base"].shape == cache[0]["residual"].shape == (2, 2, 8, 8)


def test_parallel_mode_is_refused_for_the_delta_rule():
    from bestiary.layers.attention_variants import ResidualLinearAttention

    with pytest.raises(ValueError, match="without the delta rule"):
        ResidualLinearAttention(16, 2, delta=True, mode="parallel")


def test_registered():
    assert isinstance(bestiary.build("rdn", tiny=True), RDN)
