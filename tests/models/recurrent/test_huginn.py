"""Huginn: r iterations are the core applied r times to [state, embedding] by hand; more iterations
change the outputs; truncated backprop keeps the values and cuts the gradient of earlier iterations;
cached decoding equals the full forward; sandwich norms keep the state bounded for long loops."""

import pytest
import torch

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("huginn", tiny=True, **overrides).double()


def _by_hand(model, tokens, r, detach_before=None):
    x = model.tok_embed(tokens)
    for block in model.prelude:
        x = block(x)
    e, s = x, torch.zeros_like(x)
    for i in range(r):
        if i == detach_before:
            s = s.detach()
        s = model.adapter(torch.cat([s, e], dim=-1))
        for block in model.core:
            s = block(s)
    for block in model.coda:
        s = block(s)
    return model.lm_head(model.norm(s))


def test_r_iterations_equal_the_core_applied_r_times():
    model, tokens = _model(n_core=2, backprop_depth=None).eval(), torch.randint(0, 32, (2, 6))
    for r in (1, 4):
        torch.testing.assert_close(model(tokens, n_iterations=r), _by_hand(model, tokens, r))


def test_more_iterations_change_the_outputs():
    model, tokens = _model().eval(), torch.randint(0, 32, (2, 6))
    outputs = [model(tokens, n_iterations=r) for r in (1, 2, 8)]
    assert not torch.allclose(outputs[0], outputs[1]) and not torch.allclose(outputs[1], outputs[2])


def test_truncated_backprop_reaches_only_the_last_iterations():
    model, tokens = _model(n_iterations=4, backprop_depth=2), torch.randint(0, 32, (2, 6))
    ours = model(tokens)
    expected = _by_hand(model, tokens, 4, detach_before=2)
    torch.testing.assert_close(ours, expected)
    weights = torch.randn_like(ours)
    grads = torch.autograd.grad((ours * weights).sum(), list(model.parameters()))
    grads_by_hand = torch.autograd.grad((expected * weights).sum(), list(model.parameters()))
    full = torch.autograd.grad((_by_hand(model, tokens, 4) * weights).sum(), list(model.parameters()))
    for a, b in zip(grads, grads_by_hand, strict=True):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(grads, full))  # the cut is real


def test_cached_decoding_equals_the_full_forward():
    model, tokens = _model(n_iterations=3, n_core=2).eval(), torch.randint(0, 32, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full)
    assert len(cache.layers) == 1 + 3 * 2 + 1  # prelude, iterations x core layers, coda
    with pytest.raises(ValueError, match="holds 3 core iterations"):
        model(tokens[:, :1], cache=model.init_cache(2), n_iterations=5)


def test_random_initial_state_and_a_long_loop_stay_finite_and_bounded():
    model, tokens = _model(state_init="random", state_std=2.0).eval(), torch.randint(0, 32, (2, 6))
    with torch.no_grad():
        logits = model(tokens, n_iterations=64)
    assert torch.isfinite(logits).all()
    a, b = model(tokens, n_iterations=64), model(tokens, n_iterations=64)
    assert not torch.equal(a, b)  # s_0 is drawn afresh on each call, as in the paper


def test_sampled_iteration_counts_have_the_configured_mean():
    model = _model(n_iterations=8)
    generator = torch.Generator().manual_seed(0)
    draws = torch.tensor([model.sample_n_iterations(generator) for _ in range(4000)], dtype=torch.float64)
    assert draws.min() >= 1 and abs(draws.mean().item() - 9.0) < 0.3  # 1 + Poisson with mean 8
