"""Titans' neural memory. Oracle: the paper's update is a gradient step, so torch.autograd is the
reference: the layer equals a naive float64 loop that takes autograd gradients of ||M(k) - v||^2
(at the chunk's start weights), with momentum (surprise) and weight decay (forgetting); the cache
continues the sequence across chunk boundaries; both variants (LMM, MAL) decode with a cache."""

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.recurrent.titans import Config, NeuralMemory

D, H = 8, 2


def _mixer(chunk_size):
    torch.manual_seed(0)
    m = NeuralMemory(Config(d_model=D, n_heads=H, kernel_size=3, chunk_size=chunk_size)).double()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m


def _naive(m, x, chunk_size):
    q, k, v, alpha, eta, theta, _ = m.views(x)
    out = torch.zeros_like(q)
    for b in range(x.shape[0]):
        for h in range(H):
            W1, W2 = m.W1_init[h].detach().clone(), m.W2_init[h].detach().clone()
            S1, S2 = torch.zeros_like(W1), torch.zeros_like(W2)
            start = (W1, W2)
            for t in range(x.shape[1]):
                W1_req, W2_req = (w.clone().requires_grad_() for w in start)
                loss = (F.silu(k[b, t, h].detach() @ W1_req) @ W2_req - v[b, t, h].detach()).pow(2).sum()
                g1, g2 = torch.autograd.grad(loss, (W1_req, W2_req))
                S1, S2 = eta[b, t, h] * S1 - theta[b, t, h] * g1, eta[b, t, h] * S2 - theta[b, t, h] * g2
                W1, W2 = (1 - alpha[b, t, h]) * W1 + S1, (1 - alpha[b, t, h]) * W2 + S2
                out[b, t, h] = F.silu(q[b, t, h] @ W1) @ W2
                if (t + 1) % chunk_size == 0:
                    start = (W1, W2)
    return m.out_proj(m.out_norm(out).reshape(x.shape[0], x.shape[1], D))


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_memory_update_equals_autograd_gradient_steps_with_momentum_and_decay(chunk_size):
    m = _mixer(chunk_size)
    x = torch.randn(2, 7, D, dtype=torch.float64)
    torch.testing.assert_close(m(x), _naive(m, x, chunk_size), rtol=1e-10, atol=1e-12)


def test_cache_steps_equal_the_full_sequence_across_chunk_boundaries():
    m = _mixer(3)
    x = torch.randn(2, 10, D, dtype=torch.float64)
    with torch.no_grad():
        full = m(x)
        cache = m.init_cache(2)
        pieces = [m(x[:, :2], cache=cache), m(x[:, 2:7], cache=cache)]
        pieces += [m(x[:, t : t + 1], cache=cache) for t in range(7, 10)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("variant", ["lmm", "mal", "mag"])
def test_language_model_cache_steps_equal_full(variant):
    torch.manual_seed(0)
    model = bestiary.build("titans", tiny=True, variant=variant).eval()
    assert len(model.blocks) == (4 if variant == "mal" else 2)  # MAL: memory layer + attention layer
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)


def test_memory_as_gate_combines_attention_and_memory_on_the_same_input():
    """MAG: o = RMSNorm(attention(x)) * sigmoid(RMSNorm(memory(x))), each branch a mixer of its own."""
    torch.manual_seed(0)
    mixer = bestiary.build("titans", tiny=True, variant="mag").blocks[0].mixer
    x = torch.randn(2, 6, 32)
    expected = mixer.attention_norm(mixer.attention(x)) * torch.sigmoid(mixer.memory_norm(mixer.memory(x)))
    torch.testing.assert_close(mixer(x), expected)
    with torch.no_grad():  # the memory branch really gates: changing its output changes the result
        mixer.memory.out_proj.weight.mul_(-1)
    assert not torch.allclose(mixer(x), expected)
