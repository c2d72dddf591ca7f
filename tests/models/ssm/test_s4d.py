"""S4D: the S4D-Lin/Inv SSM written naively in float64 as the oracle, convolution == recurrence
(logits and gradients), whole == chunked == token by token."""

import math

import pytest
import torch
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("s4d", tiny=True, **overrides).double()


def test_mixer_matches_the_paper_equations_run_as_a_loop():
    """x_k = exp(dt A) x_{k-1} + (exp(dt A) - 1) / A * B u_k,  y_k = 2 Re(C x_k) + D u_k (B = 1),
    then GELU and the GLU output; with the S4D-Lin init A_n = -1/2 + i pi n."""
    mixer = _build(dt_min=0.01, dt_max=0.5).blocks[0].mixer
    ssm = mixer.ssm
    A = torch.complex(-torch.exp(ssm.log_neg_real), ssm.imag).detach()
    torch.testing.assert_close(
        A[0], torch.complex(torch.full((4,), -0.5).double(), math.pi * torch.arange(4.0).double())
    )
    dt = torch.exp(ssm.log_dt).detach()
    C = torch.view_as_complex(ssm.C.detach())
    u = torch.randn(2, 10, 16, dtype=torch.float64)
    ys = []
    for b in range(2):
        for h in range(16):
            x = torch.zeros(4, dtype=torch.complex128)
            for k in range(10):
                x = torch.exp(dt[h] * A[h]) * x + (torch.exp(dt[h] * A[h]) - 1) / A[h] * u[b, k, h]
                ys.append(2 * (C[h] * x).sum().real + ssm.D[h].detach() * u[b, k, h])
    y = torch.stack(ys).reshape(2, 16, 10).transpose(1, 2)
    expected = torch.nn.functional.glu(mixer.output.proj(torch.nn.functional.gelu(y)), dim=-1)
    torch.testing.assert_close(mixer(u), expected)


def test_convolution_equals_recurrence_logits_and_gradients():
    for init in ("lin", "inv"):
        assert_modes_agree(
            lambda mode, init=init: _build(mode=mode, init=init), 64, ("convolution", "recurrent")
        )


def test_whole_equals_chunks_equals_token_steps_with_a_fixed_size_state():
    for mode in ("convolution", "recurrent"):
        model = _build(mode=mode).eval()
        cache = assert_cache_steps_equal_full(model, 64)
        assert cache[0]["h"].shape == (2, 16, 4) and cache[0]["h"].is_complex()


def test_bad_options_are_refused_by_name():
    with pytest.raises(bestiary.ConfigError, match="d_state=7 must be even"):
        bestiary.build("s4d", tiny=True, d_state=7)
    with pytest.raises(bestiary.ConfigError, match="dt_min=0.5 must be <= dt_max=0.1"):
        bestiary.build("s4d", tiny=True, dt_min=0.5)
