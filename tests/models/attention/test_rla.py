"""RLA: the recurrence and the parallel form against the equations in NumPy float64 (outputs, final
states, input gradients), parallel == recurrent (parameter gradients too), and cached decoding."""

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full
from residual_attention_helpers import np_residual_attention, random_inputs

import bestiary
from bestiary.layers.attention_variants import (
    residual_linear_attention_parallel,
    residual_linear_attention_recurrent,
)
from bestiary.models.attention.rla import RLA, Config

CLIP = 0.5


def _forms():
    return {
        "recurrent": lambda *x: residual_linear_attention_recurrent(*x, delta=False, clip=CLIP),
        "parallel": lambda *x: residual_linear_attention_parallel(*x, clip=CLIP),
    }


@pytest.mark.parametrize("form", ["recurrent", "parallel"])
def test_matches_the_equations_with_gradients(form):
    rng = np.random.default_rng(0)
    inputs = random_inputs(rng)
    expected, finals = np_residual_attention(*inputs, delta=False, clip=CLIP)
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    out, (base, aux) = _forms()[form](*(t[None] for t in tensors))
    np.testing.assert_allclose(out[0].detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(base[0, 1].detach().numpy(), finals[1][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(aux[0, 1].detach().numpy(), finals[1][1], rtol=1e-10, atol=1e-12)
    upstream = rng.normal(size=expected.shape)
    (out[0] * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for which in range(6):
        index = (1, 3, 2)[: inputs[which].ndim]
        plus, minus = [a.copy() for a in inputs], [a.copy() for a in inputs]
        plus[which][index] += step
        minus[which][index] -= step
        numeric = (
            (upstream * np_residual_attention(*plus, delta=False, clip=CLIP)[0]).sum()
            - (upstream * np_residual_attention(*minus, delta=False, clip=CLIP)[0]).sum()
        ) / (2 * step)
        assert tensors[which].grad[index].item() == pytest.approx(numeric, rel=1e-5, abs=1e-8)


def test_without_residual_writes_it_is_gated_linear_attention_over_the_past():
    # γ = 0: only the history predicts, o_t = α_t S_{t-1} q_t, so the current token never reaches the
    # output; the residual memory is what lets it in, corrected
    rng = np.random.default_rng(1)
    q, k, v, alpha, beta, _ = random_inputs(rng)
    out, _ = np_residual_attention(q, k, v, alpha, beta, np.zeros_like(beta), delta=False, clip=CLIP)
    plain = np.zeros_like(out)
    for h in range(2):
        for t in range(6):  # o_t = sum_{j<t} (prod_{j<s<=t} α_s) β_j v_j (k_j·q_t)
            for j in range(t):
                plain[h, t] += np.prod(alpha[h, j + 1 : t + 1]) * beta[h, j] * v[h, j] * (k[h, j] @ q[h, t])
    np.testing.assert_allclose(out, plain, rtol=1e-10, atol=1e-12)
    assert not np.allclose(
        np_residual_attention(q, k, v, alpha, beta, beta, delta=False, clip=CLIP)[0], plain
    )


def test_parallel_mode_equals_recurrent_mode_with_parameter_gradients():
    models, outputs = [], []
    tokens = torch.randint(0, 40, (2, 9))
    for mode in ("parallel", "recurrent"):
        torch.manual_seed(0)
        model = RLA(Config(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, mode=mode)).double()
        models.append(model)
        outputs.append(model(tokens))
        outputs[-1].pow(2).mean().backward()
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-10, atol=1e-12)
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-12, msg=name)


@pytest.mark.parametrize("mode", ["parallel", "recurrent"])
def test_cached_decoding_equals_the_full_forward_with_a_constant_size_state(mode):
    torch.manual_seed(0)
    model = RLA(Config(vocab_size=40, d_model=16, n_layers=2, n_heads=2, d_ff=32, mode=mode)).double().eval()
    with torch.no_grad():
        cache = assert_cached_equals_full(
            model, torch.randint(0, 40, (2, 9)), split=4, rtol=1e-10, atol=1e-10
        )
    assert cache[0]["base"].shape == cache[0]["residual"].shape == (2, 2, 8, 8)


def test_registered():
    assert isinstance(bestiary.build("rla", tiny=True), RLA)
