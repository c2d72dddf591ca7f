"""MIRAS (Moneta / Yaad / Memora). Oracle: the paper's update is a gradient step with a retention
gate, so torch.autograd is the reference: each attentional bias's gradient equals autograd's, and
the layer equals a naive float64 loop written from the paper's update rules (Memora's in its
softmax / mirror-descent form) with autograd gradients; the cache continues the sequence."""

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.recurrent.miras import Config, MirasMemory, attentional_bias_grad

D, H = 8, 2
MODELS = {"moneta": ("lp", "lq"), "yaad": ("huber", "l2"), "memora": ("l2", "kl")}


def _loss(error, loss, p=3.0, delta=1.0):
    if loss == "l2":
        return error.pow(2).sum(-1)
    if loss == "lp":
        return error.abs().pow(p).sum(-1)
    norm = error.norm(dim=-1)
    return torch.where(norm <= delta, 0.5 * norm**2, delta * (norm - delta / 2))


@pytest.mark.parametrize("loss", ["l2", "lp", "huber"])
def test_attentional_bias_gradient_equals_autograd(loss):
    error = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)  # rows inside and outside delta
    with torch.no_grad():
        error[0] *= 0.05
    (expected,) = torch.autograd.grad(_loss(error, loss, 2.5, 1.0).sum(), error)
    torch.testing.assert_close(attentional_bias_grad(error, loss, 2.5, 1.0), expected, rtol=1e-12, atol=1e-12)


def _mixer(name, chunk_size):
    torch.manual_seed(0)
    loss, retention = MODELS[name]
    config = Config(
        d_model=D, n_heads=H, kernel_size=3, chunk_size=chunk_size, loss=loss, retention=retention
    )
    m = MirasMemory(config).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def _naive(m, x, chunk_size):
    """Per head, per token, the paper's rules: Yaad W_t = alpha W_{t-1} - eta grad; Moneta
    A_t = alpha A_{t-1} - eta grad, W_t = A_t / ||A_t||_q^(q-2); Memora W_t = softmax(alpha log W_{t-1}
    - eta grad). Gradients by autograd at the chunk's start weights."""
    q, k, v, alpha, eta, _ = m.views(x)
    out = torch.zeros_like(q)

    def normalise(A):
        return A / A.abs().pow(m.q).sum().pow(1 / m.q).pow(m.q - 2)

    for b in range(x.shape[0]):
        for h in range(H):
            A = [m.A1_init[h].detach().clone(), m.A2_init[h].detach().clone()]
            W = {"l2": A, "lq": [normalise(a) for a in A], "kl": [a.softmax(-1) for a in A]}[m.retention]
            start = list(W)
            for t in range(x.shape[1]):
                params = [w.clone().requires_grad_() for w in start]
                error = F.silu(k[b, t, h].detach() @ params[0]) @ params[1] - v[b, t, h].detach()
                grads = torch.autograd.grad(_loss(error, m.loss, m.p, m.delta), params)
                a, lr = alpha[b, t, h], eta[b, t, h]
                if m.retention == "l2":
                    W = [a * w - lr * g for w, g in zip(W, grads)]
                elif m.retention == "lq":
                    A = [a * acc - lr * g for acc, g in zip(A, grads)]
                    W = [normalise(acc) for acc in A]
                else:
                    W = [torch.softmax(a * w.log() - lr * g, dim=-1) for w, g in zip(W, grads)]
                out[b, t, h] = F.silu(q[b, t, h] @ W[0]) @ W[1]
                if (t + 1) % chunk_size == 0:
                    start = list(W)
    return m.out_proj(m.out_norm(out).reshape(x.shape[0], x.shape[1], D))


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("chunk_size", [1, 3])
def test_memory_update_equals_the_papers_rule_with_autograd(name, chunk_size):
    m = _mixer(name, chunk_size)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    torch.testing.assert_close(m(x), _naive(m, x, chunk_size), rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("name", list(MODELS))
def test_cache_steps_equal_the_full_sequence(name):
    m = _mixer(name, 3)
    x = torch.randn(2, 10, D, dtype=torch.float64)
    with torch.no_grad():
        full = m(x)
        cache = m.init_cache(2)
        pieces = [m(x[:, :2], cache=cache), m(x[:, 2:7], cache=cache)]
        pieces += [m(x[:, t : t + 1], cache=cache) for t in range(7, 10)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)


def test_language_model_decodes_with_a_cache():
    torch.manual_seed(0)
    model = bestiary.build("miras", tiny=True, loss="huber", retention="kl").eval()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
