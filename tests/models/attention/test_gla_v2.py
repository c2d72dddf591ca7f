"""GLA v2 against its recurrence written out naively in float64; its forms against each other;
decoding through the cache; the long-memory initialisation."""

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.attention.gla_v2 import Config, GatedLinearAttentionV2


def _mixer(mode="chunkwise", chunk_size=3):
    torch.manual_seed(0)
    mixer = GatedLinearAttentionV2(Config(d_model=8, n_heads=2, chunk_size=chunk_size, mode=mode)).double()
    mixer.init_weights()
    return mixer


def _naive(m, x):
    """S_t = f_t * S_{t-1} + phi(k_t) w_t^T, z_t = f_t * z_{t-1} + phi(k_t), o_t = phi(q)S / phi(q)z."""
    B, T, D = x.shape
    phi = lambda t: F.elu(t) + 1  # noqa: E731
    q, k = phi(m.q_proj(x)), phi(m.k_proj(x))
    v = m.v_proj(x)
    kernel = m.v_conv.conv.weight[:, 0]  # (D, 4): causal depthwise conv, zeros before the start
    conv = torch.stack(
        [
            sum(kernel[:, j] * v[:, t - 3 + j] for j in range(4) if t - 3 + j >= 0) + m.v_conv.conv.bias
            for t in range(T)
        ],
        dim=1,
    )
    w = F.silu(conv) * F.silu(m.input_proj(x))
    f = torch.sigmoid(m.forget_proj(x))
    H, Dh = m.n_heads, D // m.n_heads
    out = torch.zeros(B, T, D, dtype=x.dtype)
    for h in range(H):
        cols = slice(h * Dh, (h + 1) * Dh)
        S, z = torch.zeros(B, Dh, Dh, dtype=x.dtype), torch.zeros(B, Dh, dtype=x.dtype)
        for t in range(T):
            S = f[:, t, cols, None] * S + k[:, t, cols, None] * w[:, t, None, cols]
            z = f[:, t, cols] * z + k[:, t, cols]
            out[:, t, cols] = torch.einsum("bc,bcv->bv", q[:, t, cols], S) / (
                (q[:, t, cols] * z).sum(-1, keepdim=True) + 1e-6
            )
    heads = out.view(B, T, H, Dh)  # GroupNorm per position and head: mean and variance of Dh numbers
    mean, var = heads.mean(-1, keepdim=True), heads.var(-1, unbiased=False, keepdim=True)
    out = ((heads - mean) / torch.sqrt(var + m.group_norm.eps)).view(B, T, D)
    out = out * m.group_norm.weight + m.group_norm.bias
    return m.out_proj(out)


@pytest.mark.parametrize("mode", ["parallel", "chunkwise", "recurrent"])
def test_each_form_equals_the_recurrence_written_out(mode):
    m = _mixer(mode)
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _naive(m, x), atol=1e-10, rtol=1e-8)


def test_forms_agree_in_gradients():
    x = torch.randn(2, 10, 8, dtype=torch.float64)
    grads = []
    for mode in ("parallel", "chunkwise", "recurrent"):
        m = _mixer(mode, chunk_size=4)
        m(x).square().sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in m.parameters()]))
    torch.testing.assert_close(grads[0], grads[1])
    torch.testing.assert_close(grads[0], grads[2])


def test_cached_decoding_equals_the_full_forward_with_a_constant_state():
    m, x = _mixer(), torch.randn(2, 9, 8, dtype=torch.float64)
    with torch.no_grad():
        full = m(x)
        cache = m.init_cache(2)
        steps = [m(x[:, :2], cache=cache)] + [m(x[:, t : t + 1], cache=cache) for t in range(2, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-10, rtol=1e-8)
    assert cache["conv"].shape == (2, 3, 8)  # the last kernel_size - 1 values, whatever the length


def test_forget_gates_start_near_095_in_the_built_model():
    torch.manual_seed(0)
    model = bestiary.build("gla_v2", tiny=True)
    mixer = model.blocks[0].mixer
    torch.testing.assert_close(mixer.forget_proj.bias, torch.full((16,), 3.0))
    x = model.blocks[0].mixer_norm(model.tok_embed(torch.randint(0, 64, (2, 8))))  # what the mixer reads
    with torch.no_grad():
        gates = torch.sigmoid(mixer.forget_proj(x))  # f_t at initialisation, every channel and step
    assert gates.min() > 0.93 and gates.max() < 0.97  # long memory (~20 steps) from the start
