"""S5: the MIMO SSM written as a naive float64 loop is the oracle; parallel (Hillis-Steele) ==
cumsum == sequential scans (logits and gradients); whole == chunked == token by token."""

import torch
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary
from bestiary.layers.ssm_kernels import nplr_legs


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("s5", tiny=True, **overrides).double()


def test_init_is_hippo_n_and_the_ssm_matches_a_naive_loop():
    mixer = _build().blocks[0].mixer
    A = torch.complex(-torch.exp(mixer.log_neg_real), mixer.imag).detach()
    Lambda, _, _, _ = nplr_legs(8)
    torch.testing.assert_close(A, Lambda[4:], atol=1e-6, rtol=1e-6)  # the positive-imaginary half
    assert (A.imag > 0).all()
    dt = torch.exp(mixer.log_dt).detach()
    B = torch.view_as_complex(mixer.B.detach().contiguous())  # (P/2, D)
    C = torch.view_as_complex(mixer.C.detach().contiguous())  # (D, P/2)
    u = torch.randn(2, 9, 16, dtype=torch.float64)
    x = torch.zeros(2, 4, dtype=torch.complex128)
    expected = []
    for k in range(9):  # x_k = exp(dt A) x + (exp(dt A) - 1) / A * B u_k;  y = 2 Re(C x) + D u
        B_bar = ((torch.exp(dt * A) - 1) / A)[:, None] * B  # (P/2, D)
        x = torch.exp(dt * A) * x + u[:, k].to(B.dtype) @ B_bar.T  # (2, P/2)
        expected.append(2 * (x @ C.T).real + mixer.D.detach() * u[:, k])
    y, _ = mixer.ssm(u, None, "parallel")
    torch.testing.assert_close(y, torch.stack(expected, 1))


def test_parallel_and_cumsum_scans_equal_the_sequential_scan():
    assert_modes_agree(lambda mode: _build(mode=mode), 64, ("recurrent", "parallel", "cumsum"))


def test_whole_equals_chunks_equals_token_steps():
    for mode in ("parallel", "cumsum"):
        cache = assert_cache_steps_equal_full(_build(mode=mode).eval(), 64)
        assert cache[0]["h"].shape == (2, 4)
