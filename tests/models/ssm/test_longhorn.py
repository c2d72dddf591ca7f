"""Longhorn: the per-channel update is the exact minimiser of the online-regression objective when
k is axis-aligned (where the diagonal approximation is exact); a naive loop over channels and time
is the oracle for the layer; parallel == recurrent (logits and gradients); cache steps == whole."""

import torch
import torch.nn.functional as F
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("longhorn", tiny=True, **overrides).double()


def test_closed_form_step_minimises_the_online_regression_objective():
    """argmin_s ||s - s0||^2 + beta (s.k - x)^2 solves (I + beta k k^T) s = s0 + beta x k; the closed
    form (I - eps k k^T) s0 + eps x k equals it, and its diagonal is exact for an axis-aligned k."""
    torch.manual_seed(0)
    s0, k, x, beta = torch.randn(5, dtype=torch.float64), torch.randn(5, dtype=torch.float64), 0.7, 0.9
    solution = torch.linalg.solve(
        torch.eye(5, dtype=torch.float64) + beta * torch.outer(k, k), s0 + beta * x * k
    )
    eps = beta / (1 + beta * k @ k)
    torch.testing.assert_close(
        (torch.eye(5, dtype=torch.float64) - eps * torch.outer(k, k)) @ s0 + eps * x * k, solution
    )
    k_axis = torch.zeros(5, dtype=torch.float64)
    k_axis[2] = 1.3
    eps = beta / (1 + beta * k_axis @ k_axis)
    diagonal = (1 - eps * k_axis**2) * s0 + eps * x * k_axis  # Longhorn's update
    exact = torch.linalg.solve(
        torch.eye(5, dtype=torch.float64) + beta * torch.outer(k_axis, k_axis), s0 + beta * x * k_axis
    )
    torch.testing.assert_close(diagonal, exact)


def test_mixer_matches_a_naive_loop():
    mixer = _build().blocks[0].mixer
    x = torch.randn(1, 7, 16, dtype=torch.float64)
    u, z = mixer.in_proj(x)[0].chunk(2, -1)  # (T, d_inner)
    padded = torch.cat([torch.zeros(3, 32, dtype=torch.float64), u], 0)
    w = mixer.conv.conv.weight[:, 0]  # (d_inner, 4)
    u = F.silu(torch.stack([(padded[t : t + 4].T * w).sum(-1) + mixer.conv.conv.bias for t in range(7)]))
    S, outputs = torch.zeros(32, 4, dtype=torch.float64), []
    for t in range(7):
        q, k = mixer.qk_proj(u[t]).chunk(2)
        beta = torch.sigmoid(mixer.beta_proj(u[t]))
        for i in range(32):
            eps = beta[i] / (1 + beta[i] * (k @ k))
            S[i] = (1 - eps * k**2) * S[i] + eps * u[t, i] * k
        outputs.append(S @ q + mixer.D * u[t])
    y = torch.stack(outputs) * F.silu(z)
    torch.testing.assert_close(mixer(x)[0], mixer.out_proj(y))


def test_parallel_scan_equals_recurrence_logits_and_gradients():
    assert_modes_agree(lambda mode: _build(mode=mode), 64, ("recurrent", "parallel"))


def test_whole_equals_chunks_equals_token_steps():
    cache = assert_cache_steps_equal_full(_build().eval(), 64)
    assert cache[0]["S"].shape == (2, 32, 4) and cache[0]["conv"].shape == (2, 3, 32)
