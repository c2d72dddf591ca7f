"""Clockwork RNN: equals the paper's equations written per core in float64 (only cores with
t mod T_i == 0 update, W_H block-triangular); slow cores hold their state between ticks; no fast ->
slow path exists (also for the gradient); the cache continues the clock."""

import torch

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("multi_timescale_recurrence", tiny=True, **overrides).double()


def _naive(model, x):
    """The paper's update, one core at a time: core i (width w, period 2^i) reads all cores j >= i."""
    n, D = model.config.n_cores, model.config.d_model
    w = D // n
    W_I, b, W_H = model.input_proj.weight, model.input_proj.bias, model.recurrent
    h = torch.zeros(x.shape[0], D, dtype=x.dtype)
    outputs = []
    for t in range(x.shape[1]):
        new = h.clone()
        for i in range(n):
            if t % 2**i == 0:
                rows = slice(i * w, (i + 1) * w)
                slower = slice(i * w, D)  # cores i..n-1
                new[:, rows] = torch.tanh(
                    x[:, t] @ W_I[rows].T + b[rows] + h[:, slower] @ W_H[rows, slower].T
                )
        h = new
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def test_equals_the_papers_update_core_by_core():
    model, x = _model(), torch.randn(2, 11, 3, dtype=torch.float64)
    torch.testing.assert_close(model(x), _naive(model, x), atol=1e-12, rtol=1e-10)


def test_slow_cores_hold_their_state_between_ticks():
    model, x = _model(), torch.randn(2, 12, 3, dtype=torch.float64)
    slowest = model(x)[..., 8:]  # core 2, period 4: updates at t = 0, 4, 8
    for tick in (0, 4, 8):
        for t in range(tick + 1, tick + 4):
            torch.testing.assert_close(slowest[:, t], slowest[:, tick], rtol=0, atol=0)
    assert not torch.allclose(slowest[:, 4], slowest[:, 0])


def test_fast_cores_never_reach_slow_cores():
    """Perturbing the fastest core's recurrent weights leaves the slower cores' states unchanged,
    and the masked (fast -> slow) weights get zero gradient."""
    model, x = _model(), torch.randn(2, 9, 3, dtype=torch.float64)
    out = model(x)
    out[..., 4:].sum().backward()  # the two slower cores
    fast_to_slow = model.recurrent.grad[4:, :4]
    assert torch.equal(fast_to_slow, torch.zeros_like(fast_to_slow))
    independent = _model(slow_to_fast=False)
    with torch.no_grad():
        before = independent(x)
        independent.recurrent[:4, 4:] += 1.0  # slow -> fast weights are masked out when independent
        torch.testing.assert_close(independent(x), before, rtol=0, atol=0)


def test_whole_equals_chunked_equals_token_by_token():
    model, x = _model(), torch.randn(2, 10, 3, dtype=torch.float64)
    with torch.no_grad():
        whole = model(x)
        cache = model.init_cache(2)
        chunked = torch.cat([model(x[:, :3], cache=cache), model(x[:, 3:], cache=cache)], dim=1)
        cache = model.init_cache(2)
        steps = torch.cat([model(x[:, t : t + 1], cache=cache) for t in range(10)], dim=1)
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(steps, whole, atol=1e-12, rtol=1e-10)
