"""S4: the layer's DPLR parameters rebuild HiPPO-LegS; the oracle is HiPPO-LegS itself, bilinear
discretised and run as a dense recurrence in the original basis (float64); convolution ==
recurrence (logits and gradients); whole == chunked == token by token."""

import torch
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary
from bestiary.layers.ssm_kernels import hippo_legs, nplr_legs


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("s4", tiny=True, **overrides).double()


def test_initial_state_matrix_is_hippo_legs_in_the_rotated_basis():
    ssm = _build().blocks[0].mixer.ssm
    _, V, _, _ = nplr_legs(8)
    A, _ = hippo_legs(8)
    rebuilt = V @ ssm.state_matrix().detach().to(torch.complex128) @ V.conj().T
    torch.testing.assert_close(rebuilt, A.to(torch.complex128), atol=1e-5, rtol=1e-5)  # float32 init


def test_layer_equals_hippo_legs_recurrence_in_the_original_basis():
    """In the original basis x = V x~: A = HiPPO-LegS (after init), B = V B~, C = C~ V*. Run
    x_k = (I - dt/2 A)^-1 [(I + dt/2 A) x_{k-1} + dt B u_k], y_k = Re(C x_k) + D u_k as a loop."""
    ssm = _build(dt_min=0.01, dt_max=0.3).blocks[0].mixer.ssm
    _, V, _, _ = nplr_legs(8)
    A = V @ ssm.state_matrix().detach() @ V.conj().T  # HiPPO-LegS up to float32 rounding of the init
    B = torch.view_as_complex(ssm.B.detach()) @ V.T  # rows: V B~_h
    C = torch.view_as_complex(ssm.C.detach()) @ V.conj().T
    dt, D = torch.exp(ssm.log_dt).detach(), ssm.D.detach()
    u = torch.randn(2, 12, 16, dtype=torch.float64)
    eye = torch.eye(8, dtype=torch.complex128)
    expected = torch.zeros(2, 12, 16, dtype=torch.float64)
    for h in range(16):
        forward, backward = eye + dt[h] / 2 * A, eye - dt[h] / 2 * A
        x = torch.zeros(2, 8, dtype=torch.complex128)
        for k in range(12):
            x = torch.linalg.solve(backward, forward @ x.T + dt[h] * B[h][:, None] * u[:, k, h]).T  # (2, N)
            expected[:, k, h] = (x @ C[h]).real + D[h] * u[:, k, h]
    y, _ = ssm(u)
    torch.testing.assert_close(y, expected)


def test_convolution_equals_recurrence_logits_and_gradients():
    assert_modes_agree(lambda mode: _build(mode=mode), 64, ("convolution", "recurrent"))


def test_whole_equals_chunks_equals_token_steps():
    for mode in ("convolution", "recurrent"):
        cache = assert_cache_steps_equal_full(_build(mode=mode).eval(), 64)
        assert cache[0]["h"].shape == (2, 16, 8)
