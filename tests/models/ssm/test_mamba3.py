"""Mamba-3: the paper's recurrence written naively (complex state, trapezoid rule) in float64 is
the oracle; the chunked form (real SSD with rotated B, C) equals the complex recurrence in outputs
and gradients; whole == pieces == token by token through the cache; the rotation matters."""

import pytest
import torch
import torch.nn.functional as F

import bestiary
from bestiary.models.ssm.mamba3 import Mamba3Mixer


def _mixer(mode, chunk_size=4, seed=0):
    torch.manual_seed(seed)
    return Mamba3Mixer(16, d_state=8, expand=2, head_dim=8, chunk_size=chunk_size, mode=mode).double()


def _x(T=11, seed=1):
    return torch.randn(2, T, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _naive(mixer, x):
    """h_t = a_t h_{t-1} + (1 - l_t) dt_t a_t B_{t-1} x_{t-1} + l_t dt_t B_t x_t, a_t = e^{dt_t (A + i theta_t)},
    y_t = Re(C_t^* h_t) + D x_t, one head and one state pair at a time."""
    z, u, B, C, dt, lam, theta = mixer.in_proj(x).split(mixer.split, dim=-1)
    B, C = mixer.B_norm(B), mixer.C_norm(C)
    dt, lam = F.softplus(dt + mixer.dt_bias), torch.sigmoid(lam)
    A = -torch.exp(mixer.A_log)
    H, P, K = mixer.n_heads, mixer.head_dim, mixer.d_state // 2
    u = u.unflatten(-1, (H, P))
    y = torch.zeros(x.shape[0], x.shape[1], H, P, dtype=x.dtype)
    for h in range(H):
        for k in range(K):  # one head and one state pair; the batch and the P channels side by side
            state, x_prev, B_prev = 0j, 0.0, 0j
            for t in range(x.shape[1]):
                a = torch.exp(dt[:, t, h] * torch.complex(A[h].expand_as(theta[:, t, k]), theta[:, t, k]))
                B_t = torch.complex(B[:, t, 2 * k], B[:, t, 2 * k + 1])  # (batch,)
                C_t = torch.complex(C[:, t, 2 * k], C[:, t, 2 * k + 1])
                lam_t, dt_t, x_t = lam[:, t, h, None], dt[:, t, h, None], u[:, t, h]  # x_t: (batch, P)
                state = (
                    a[:, None] * state
                    + (1 - lam_t) * dt_t * (a * B_prev)[:, None] * x_prev
                    + lam_t * dt_t * B_t[:, None] * x_t
                )
                y[:, t, h] += (C_t.conj()[:, None] * state).real
                x_prev, B_prev = x_t, B_t
    y = y + mixer.D[:, None] * u
    return mixer.out_proj(mixer.norm(y.flatten(2), z))


def test_both_forms_equal_the_naive_equations():
    x = _x(T=6)
    with torch.no_grad():
        for mode in ("recurrent", "chunked"):
            mixer = _mixer(mode)
            torch.testing.assert_close(mixer(x), _naive(mixer, x))


@pytest.mark.parametrize("chunk_size", [3, 4, 16])
def test_chunked_equals_the_complex_recurrence_outputs_and_gradients(chunk_size):
    x = _x()
    results = []
    for mode in ("recurrent", "chunked"):
        mixer, x_ = _mixer(mode, chunk_size), x.clone().requires_grad_()
        y = mixer(x_)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        results.append((y.detach(), x_.grad, {n: p.grad for n, p in mixer.named_parameters()}))
    (y_ref, gx_ref, g_ref), (y, gx, g) = results
    torch.testing.assert_close(y, y_ref)
    torch.testing.assert_close(gx, gx_ref)
    for name, grad in g_ref.items():
        torch.testing.assert_close(g[name], grad, msg=name)


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_whole_equals_pieces_equals_token_by_token(mode):
    mixer, x = _mixer(mode), _x(T=13)
    with torch.no_grad():
        whole = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, :5], cache=cache), mixer(x[:, 5:10], cache=cache)]
        pieces += [mixer(x[:, t : t + 1], cache=cache) for t in range(10, 13)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    assert cache["ssm"].shape == (2, 4, 8, 4) and cache["ssm"].is_complex()


def test_the_rotation_changes_the_output():
    mixer, x = _mixer("chunked"), _x()
    with torch.no_grad():
        before = mixer(x)
        mixer.in_proj.weight[-mixer.d_state // 2 :] = 0  # theta = 0: a real, non-rotating state
        assert (mixer(x) - before).abs().max() > 1e-3


def test_an_odd_state_size_is_refused():
    with pytest.raises(bestiary.ConfigError, match="must be even"):
        bestiary.build("mamba3", tiny=True, d_state=7)
