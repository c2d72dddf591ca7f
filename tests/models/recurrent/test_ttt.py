"""TTT (TTT-Linear, TTT-MLP). Oracle: the paper's definition is a gradient step, so torch.autograd
is the reference: the closed-form gradient equals autograd's; the layer equals a naive float64 loop
that takes autograd gradient steps (online GD at mini-batch size 1, and mini-batch GD with gradients
at the mini-batch's start weights); dual == primal (outputs and gradients); the cache continues."""

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.recurrent.ttt import Config, TTTLayer, ln_reconstruction_grad

D, H = 8, 2
d = D // H


def _mixer(mini_batch_size=4, mode="dual", hidden_model="linear", seed=0):
    torch.manual_seed(seed)
    config = Config(
        d_model=D, n_heads=H, mini_batch_size=mini_batch_size, mode=mode, hidden_model=hidden_model
    )
    m = TTTLayer(config).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def test_closed_form_gradient_equals_autograd():
    g = torch.Generator().manual_seed(0)
    Z = torch.randn(3, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    target = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)
    weight, bias = (
        torch.randn(6, generator=g, dtype=torch.float64),
        torch.randn(6, generator=g, dtype=torch.float64),
    )
    loss = 0.5 * (F.layer_norm(Z, (6,), weight, bias, eps=1e-6) - target).pow(2).sum()
    (expected,) = torch.autograd.grad(loss, Z)
    torch.testing.assert_close(
        ln_reconstruction_grad(Z, target, weight, bias, 1e-6), expected, rtol=1e-12, atol=1e-12
    )


def _hidden(x, params, w_ln, b_ln):
    """f(x) = x + LN(hidden model(x)), the hidden model's layers with GELU between them."""
    h = x
    for layer in range(len(params) // 2):
        h = (F.gelu(h) if layer else h) @ params[2 * layer] + params[2 * layer + 1]
    return x + F.layer_norm(h, (d,), w_ln, b_ln, 1e-6)


def _naive(m, x, mini_batch_size):
    """The definition with autograd: per head, W_t = W_0 - (1/i) sum_{s<=t} eta_s grad loss_s(W_0)
    within each mini-batch (W_0: the weights at the mini-batch's start); z_t = f(q_t; W_t)."""
    q, k, v, eta = m.views(x)
    out = torch.zeros_like(q)
    initial = [p for pair in zip(m.weights, m.biases) for p in pair]
    for batch in range(x.shape[0]):
        for h in range(H):
            w_ln, b_ln = m.ttt_norm_weight[h, 0], m.ttt_norm_bias[h, 0]
            start = [p[h].detach().clone() for p in initial]
            acc = [torch.zeros_like(p) for p in start]
            for t in range(x.shape[1]):
                i = t % mini_batch_size + 1
                params = [p.clone().requires_grad_() for p in start]
                kt, vt = k[batch, h, t].detach(), v[batch, h, t].detach()
                loss = 0.5 * (_hidden(kt, params, w_ln, b_ln) - vt).pow(2).sum()
                grads = torch.autograd.grad(loss, params)
                acc = [a + eta[batch, h, t] * g for a, g in zip(acc, grads)]
                current = [p - a / i for p, a in zip(start, acc)]
                out[batch, h, t] = _hidden(q[batch, h, t], current, w_ln, b_ln)
                if i == mini_batch_size:
                    start, acc = current, [torch.zeros_like(p) for p in start]
    z = out.transpose(1, 2).reshape(x.shape[0], x.shape[1], D)
    return m.out_proj(m.out_norm(z))


@pytest.mark.parametrize("hidden_model", ["linear", "mlp"])
@pytest.mark.parametrize("mini_batch_size", [1, 3])  # 1: online gradient descent
def test_layer_equals_autograd_gradient_steps(hidden_model, mini_batch_size):
    m = _mixer(mini_batch_size, hidden_model=hidden_model)
    x = torch.randn(2, 7, D, dtype=torch.float64)  # 7: the last mini-batch of 3 is partial
    torch.testing.assert_close(m(x), _naive(m, x, mini_batch_size), rtol=1e-10, atol=1e-12)


def test_one_step_in_the_cache_is_autograds_gradient_step():
    """After one token at mini-batch size 1, the cached hidden model is W_0 - eta grad loss(W_0)."""
    m = _mixer(mini_batch_size=1)
    x = torch.randn(1, 1, D, dtype=torch.float64)
    cache = m.init_cache(1)
    m(x, cache=cache)
    q, k, v, eta = m.views(x)
    W0 = m.weights[0].detach().clone().requires_grad_()
    Z = torch.einsum("hd,hde->he", k[0, :, 0], W0) + m.biases[0]
    ln = F.layer_norm(Z, (d,), eps=1e-6) * m.ttt_norm_weight[:, 0] + m.ttt_norm_bias[:, 0]
    (grad,) = torch.autograd.grad(0.5 * (k[0, :, 0] + ln - v[0, :, 0]).pow(2).sum(), W0)
    W1 = m._unpack(cache["weights"])[0]
    torch.testing.assert_close(W1[0], (W0 - eta[0, :, 0, None, None] * grad).detach(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("hidden_model", ["linear", "mlp"])
def test_dual_form_equals_primal_outputs_and_gradients(hidden_model):
    primal, dual = _mixer(4, "primal", hidden_model), _mixer(4, "dual", hidden_model)
    x = torch.randn(2, 11, D, dtype=torch.float64)
    y_p, y_d = primal(x), dual(x)
    torch.testing.assert_close(y_d, y_p, rtol=1e-10, atol=1e-12)
    grads_p = torch.autograd.grad(y_p.square().sum(), list(primal.parameters()))
    grads_d = torch.autograd.grad(y_d.square().sum(), list(dual.parameters()))
    for g_p, g_d in zip(grads_p, grads_d):
        torch.testing.assert_close(g_d, g_p, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("hidden_model", ["linear", "mlp"])
def test_cache_steps_equal_the_full_sequence_across_mini_batch_boundaries(hidden_model):
    m = _mixer(4, hidden_model=hidden_model)
    x = torch.randn(2, 11, D, dtype=torch.float64)
    with torch.no_grad():
        full = m(x)
        cache = m.init_cache(2)
        pieces = [m(x[:, :3], cache=cache), m(x[:, 3:9], cache=cache)]
        pieces += [m(x[:, t : t + 1], cache=cache) for t in range(9, 11)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)


def test_language_model_builds_and_decodes():
    torch.manual_seed(0)
    model = bestiary.build("ttt", tiny=True, hidden_model="mlp").eval()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
