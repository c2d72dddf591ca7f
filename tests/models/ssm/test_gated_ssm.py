"""gated_ssm (Edifice's design; no reference package): the mixer equals the equations of the model's
docstring written as a naive float64 loop; the mean pooling is an explicit average of the last k
inputs with zeros before the start; the model is causal; the parallel scan equals the loop (outputs
and gradients); cached decoding equals the full forward with a state that does not grow."""

import math

import pytest
import torch

import bestiary
from bestiary.models.ssm.gated_ssm import GatedSSMMixer, causal_mean_pool


def silu(v):
    return v / (1 + math.exp(-v))


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def naive_gated_ssm(m, x):
    """The documented equations, one number at a time, in float64 Python arithmetic."""
    D, E, N, k = m.d_model, m.d_inner, m.d_state, m.kernel_size
    W_in, W_out = m.in_proj.weight.tolist(), m.out_proj.weight.tolist()
    W_g, b_g, s = m.gate_proj.weight.tolist(), m.gate_proj.bias.tolist(), m.state_offset.tolist()
    W_B, W_C, skip = m.B_proj.weight.tolist(), m.C_proj.weight.tolist(), m.skip.tolist()
    Bsz, T, _ = x.shape
    out = torch.zeros(Bsz, T, D, dtype=torch.float64)
    for b in range(Bsz):
        us = []  # every u_t so far
        h = [[0.0] * N for _ in range(E)]
        for t in range(T):
            xt = x[b, t].tolist()
            uz = [sum(W_in[i][j] * xt[j] for j in range(D)) for i in range(2 * E)]
            u, z = uz[:E], uz[E:]
            us.append(u)
            # mean of u_t .. u_{t-k+1}, positions before the first counting as 0, divided by k
            v = [silu(sum(us[t - j][e] for j in range(k) if t - j >= 0) / k) for e in range(E)]
            Bt = [sum(W_B[n][e] * v[e] for e in range(E)) for n in range(N)]
            Ct = [sum(W_C[n][e] * v[e] for e in range(E)) for n in range(N)]
            y = []
            for e in range(E):
                logit = sum(W_g[e][j] * v[j] for j in range(E)) + b_g[e]
                for n in range(N):
                    g = sigmoid(logit + s[e][n])
                    h[e][n] = g * h[e][n] + (1 - g) * v[e] * Bt[n]
                y.append((sum(h[e][n] * Ct[n] for n in range(N)) + skip[e] * v[e]) * silu(z[e]))
            for i in range(D):
                out[b, t, i] = sum(W_out[i][e] * y[e] for e in range(E))
    return out


def mixer(mode, kernel_size=3):
    torch.manual_seed(0)
    m = GatedSSMMixer(4, d_state=3, expand=2, kernel_size=kernel_size, mode=mode).double()
    with torch.no_grad():  # weights large enough that the gates take their whole range
        for name, p in m.named_parameters():
            if name != "state_offset":
                p.normal_(0, 0.7)
    return m


def build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("gated_ssm", tiny=True, **overrides).double()


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
def test_mixer_equals_the_documented_equations(mode):
    m = mixer(mode)
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    torch.testing.assert_close(m(x), naive_gated_ssm(m, x), atol=1e-12, rtol=1e-10)


def test_mean_pooling_is_the_average_of_the_last_k_inputs_with_zeros_before_the_start():
    u = torch.randn(2, 7, 3, dtype=torch.float64)
    k = 4
    means, past = causal_mean_pool(u, None, k)
    for t in range(7):
        window = u[:, max(0, t - k + 1) : t + 1]  # the real inputs among the last k
        torch.testing.assert_close(means[:, t], window.sum(dim=1) / k)  # always divided by k
    torch.testing.assert_close(past, u[:, -(k - 1) :])
    # continuing from the kept past equals pooling the whole sequence at once
    first, past = causal_mean_pool(u[:, :2], None, k)
    rest, _ = causal_mean_pool(u[:, 2:], past, k)
    torch.testing.assert_close(torch.cat([first, rest], dim=1), means)
    # a window of 1 is the identity
    torch.testing.assert_close(causal_mean_pool(u, None, 1)[0], u)


def test_causal_a_future_token_leaves_past_outputs_unchanged():
    """Past outputs are untouched; every later one changes, also those whose pooling window (k = 4)
    no longer holds the changed token: the state carries it. (Weights scaled up: at the default
    N(0, 0.02) the state's path is a product of four small matrices and moves outputs by ~1e-9.)"""
    model = build().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("proj.weight"):
                p.normal_(0, 0.5)
    tokens = torch.randint(0, 32, (2, 10))
    changed = tokens.clone()
    changed[:, 6] = (tokens[:, 6] + 1) % 32
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
    assert (a[:, 6:] - b[:, 6:]).abs().amax(dim=-1).gt(1e-4).all()


def test_parallel_equals_sequential_outputs_and_gradients():
    tokens = torch.randint(0, 32, (2, 12))
    results = []
    for mode in ("parallel", "sequential"):
        model = build(mode=mode)
        logits = model(tokens)
        weights = torch.randn_like(logits, generator=torch.Generator().manual_seed(3))
        (logits * weights).sum().backward()
        results.append((logits, [p.grad for p in model.parameters()]))
    (l_par, g_par), (l_seq, g_seq) = results
    torch.testing.assert_close(l_par, l_seq, atol=1e-12, rtol=1e-10)
    for a, b in zip(g_par, g_seq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("kernel_size", [1, 4])
def test_cached_decoding_in_chunks_and_steps_equals_the_full_forward(kernel_size):
    model = build(kernel_size=kernel_size).eval()
    tokens = torch.randint(0, 32, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :1], cache=cache), model(tokens[:, 1:3], cache=cache)]  # shorter than k - 1
        size = cache.nbytes()
        steps += [model(tokens[:, 3:7], cache=cache)]
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(7, 11)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-12, rtol=1e-10)
    assert cache.nbytes() == size and cache.length == 11  # k - 1 inputs and h (E, N) per layer


def test_the_states_start_with_decays_spread_over_timescales_from_2_to_256():
    m = GatedSSMMixer(8, d_state=5)
    decay = torch.sigmoid(m.state_offset)  # the decay for a zero gate logit, (E, N)
    torch.testing.assert_close(1 / (1 - decay[:, 0]), torch.full((16,), 2.0), rtol=1e-4, atol=0)
    torch.testing.assert_close(1 / (1 - decay[:, -1]), torch.full((16,), 256.0), rtol=1e-4, atol=0)
    assert (decay.diff(dim=1) > 0).all()
