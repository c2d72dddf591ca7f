"""native_recurrence (Edifice's design; no reference package): each recurrence type equals its
documented equations written as a naive float64 loop, the whole LM equals a naive pre-norm /
residual / no-MLP stack, the parallel scans equal the loop (outputs and gradients), cached decoding
equals the full forward, and what sets the three types apart is checked directly.

Not cross-checked against minGRU (`bestiary.layers.rnn.MinGRUMixer`): its candidate is g(W_h x) > 0,
real_gru's is W_c x unchanged, and it has no bias, so the same weights do not give the same model."""

import math

import pytest
import torch

import bestiary
from bestiary.models.recurrent.native_recurrence import (
    RECURRENCES,
    NativeRecurrenceMixer,
    log_one_plus_elu,
    one_plus_elu,
)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


def elu(v):
    return v if v > 0 else math.exp(v) - 1


def naive_recurrence(mixer, x):
    """The documented equations, one number at a time, in float64 Python arithmetic."""
    Wg, bg = mixer.gate_proj.weight.tolist(), mixer.gate_proj.bias.tolist()
    Wc, bc = mixer.input_proj.weight.tolist(), mixer.input_proj.bias.tolist()
    B, T, D = x.shape
    out = torch.zeros(B, T, D, dtype=torch.float64)
    for b in range(B):
        h = [0.0] * D
        for t in range(T):
            xt = x[b, t].tolist()
            for i in range(D):
                k = sum(Wg[i][j] * xt[j] for j in range(D)) + bg[i]
                c = sum(Wc[i][j] * xt[j] for j in range(D)) + bc[i]
                if mixer.recurrence == "elu_gru":  # z = sigmoid(Wz x), c = 1 + elu(Wc x)
                    z = sigmoid(k)
                    h[i] = (1 - z) * h[i] + z * (1 + elu(c))
                elif mixer.recurrence == "real_gru":  # z = sigmoid(Wz x), c = Wc x
                    z = sigmoid(k)
                    h[i] = (1 - z) * h[i] + z * c
                else:  # diag_linear: h = sigmoid(Wa x) h + Wb x
                    h[i] = sigmoid(k) * h[i] + c
                out[b, t, i] = h[i]
    return out


def mixer(recurrence, mode, d_model=6, seed=0):
    torch.manual_seed(seed)
    m = NativeRecurrenceMixer(d_model, recurrence, mode).double()
    with torch.no_grad():  # weights large enough that gates and candidates take their whole range
        for p in m.parameters():
            p.normal_(0, 1.0)
    return m


def build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("native_recurrence", tiny=True, **overrides).double()


@pytest.mark.parametrize("mode", ["parallel", "sequential"])
@pytest.mark.parametrize("recurrence", RECURRENCES)
def test_each_type_equals_its_documented_equations(recurrence, mode):
    m = mixer(recurrence, mode)
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    torch.testing.assert_close(m(x), naive_recurrence(m, x), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("recurrence", RECURRENCES)
def test_the_lm_is_prenorm_residual_recurrence_blocks_without_mlp(recurrence):
    model = build(recurrence=recurrence, norm_eps=1e-6).eval()
    tokens = torch.randint(0, 32, (2, 6))

    def rmsnorm(v, weight):
        return v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + 1e-6) * weight

    with torch.no_grad():
        x = model.tok_embed.weight[tokens]  # (B, T, D)
        for block in model.blocks:
            x = x + naive_recurrence(block.mixer, rmsnorm(x, block.mixer_norm.weight))
        expected = rmsnorm(x, model.norm.weight) @ model.lm_head.weight.T
        torch.testing.assert_close(model(tokens), expected, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("recurrence", RECURRENCES)
def test_parallel_equals_sequential_outputs_and_gradients(recurrence):
    tokens = torch.randint(0, 32, (2, 12))
    results = []
    for mode in ("parallel", "sequential"):
        model = build(recurrence=recurrence, mode=mode)
        logits = model(tokens)
        weights = torch.randn_like(logits, generator=torch.Generator().manual_seed(3))
        (logits * weights).sum().backward()
        results.append((logits, [p.grad for p in model.parameters()]))
    (l_par, g_par), (l_seq, g_seq) = results
    torch.testing.assert_close(l_par, l_seq, atol=1e-12, rtol=1e-10)
    for a, b in zip(g_par, g_seq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize("recurrence", RECURRENCES)
def test_cached_decoding_in_chunks_and_steps_equals_the_full_forward(recurrence):
    model = build(recurrence=recurrence).eval()
    tokens = torch.randint(0, 32, (2, 11))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :3], cache=cache), model(tokens[:, 3:7], cache=cache)]  # parallel chunks
        size = cache.nbytes()
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(7, 11)]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-12, rtol=1e-10)
    assert cache.nbytes() == size and cache.length == 11  # d_model numbers per layer, whatever T


def test_elu_gru_candidate_is_strictly_positive_so_its_state_is_and_real_grus_is_not():
    """Same weights: elu_gru's state stays > 0 (a mix of candidates 1 + elu(c) > 0), real_gru's
    does not (its candidates W_c x take either sign)."""
    x = torch.randn(3, 20, 6, dtype=torch.float64) * 3
    elu_gru, real_gru = mixer("elu_gru", "sequential"), mixer("real_gru", "sequential")
    real_gru.load_state_dict(elu_gru.state_dict())
    assert (elu_gru(x) > 0).all()
    assert (real_gru(x) < 0).any()


def test_the_candidate_1_plus_elu_stays_positive_in_floating_point_and_its_log_is_exact():
    """1 + F.elu(c) rounds to 0 for a very negative c; the module's form is e^c there (> 0), and the
    parallel form's log(1 + elu(c)) is c itself, with gradient 1, even where e^c underflows."""
    c = torch.tensor([-800.0, -40.0, -3.0, 0.0, 2.5], dtype=torch.float64, requires_grad=True)
    assert torch.nn.functional.elu(c[1]) + 1 == 0  # what the naive form gives
    assert one_plus_elu(c[1]) > 0 and one_plus_elu(c[1:].float()).gt(0).all()
    torch.testing.assert_close(one_plus_elu(c[2:]), 1 + torch.nn.functional.elu(c[2:]))
    torch.testing.assert_close(one_plus_elu(c[1:2]), torch.exp(c[1:2]))
    logs = log_one_plus_elu(c)
    torch.testing.assert_close(logs[2:], torch.log(1 + torch.nn.functional.elu(c[2:])))
    assert logs[:2].tolist() == [-800.0, -40.0]
    logs.sum().backward()
    expected_grad = torch.tensor([1.0, 1.0, 1.0, 1.0, 1 / 3.5], dtype=torch.float64)
    torch.testing.assert_close(c.grad, expected_grad)
    big = torch.tensor([800.0, -800.0], dtype=torch.float64, requires_grad=True)
    one_plus_elu(big).sum().backward()
    assert big.grad.tolist() == [1.0, 0.0]  # no NaN from the branch that where() does not take


def test_diag_linear_adds_its_input_on_top_of_the_decay_where_the_grus_interpolate():
    """With the gate's weights and bias zero (a = z = 1/2) and a constant input, real_gru's state
    converges to its candidate c (h = (h + c) / 2), diag_linear's to b / (1 - a) = 2 b (h = h / 2 + b):
    the decay and the input are independent, nothing scales the input by 1 - a."""
    x = torch.randn(1, 1, 6, dtype=torch.float64).expand(1, 60, 6)
    states = {}
    for recurrence in ("real_gru", "diag_linear"):
        m = mixer(recurrence, "parallel", seed=1)
        with torch.no_grad():
            m.gate_proj.weight.zero_()
            m.gate_proj.bias.zero_()
        states[recurrence] = m(x)[0, -1]
        candidate = m.input_proj(x[0, 0])
    torch.testing.assert_close(states["real_gru"], candidate)
    torch.testing.assert_close(states["diag_linear"], 2 * candidate)


def test_an_unknown_recurrence_is_refused():
    with pytest.raises(bestiary.ConfigError, match="recurrence"):
        bestiary.build("native_recurrence", tiny=True, recurrence="lstm")
