"""The shared pieces of the S4 family: HiPPO and its NPLR form, discretisations, kernels, FFT
convolution, and the S4D layer's convolution / recurrent equivalence (float64)."""

import math

import pytest
import torch

from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.ssm_kernels import (
    DiagonalSSM,
    direct_causal_conv,
    discretize_bilinear,
    fft_causal_conv,
    hippo_legs,
    krylov,
    nplr_legs,
    s4d_init,
    vandermonde_kernel,
)


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def test_hippo_legs_matches_the_paper_entries():
    A, B = hippo_legs(3)
    s = math.sqrt
    expected = torch.tensor([[-1, 0, 0], [-s(3), -2, 0], [-s(5), -s(15), -3]], dtype=torch.float64)
    torch.testing.assert_close(A, expected)
    torch.testing.assert_close(B, torch.tensor([1, s(3), s(5)], dtype=torch.float64))


def test_nplr_decomposition_reconstructs_hippo_legs():
    Lambda, V, P, B = nplr_legs(8)
    A, _ = hippo_legs(8)
    torch.testing.assert_close(V @ V.conj().T, torch.eye(8, dtype=torch.complex128))  # unitary
    rebuilt = V @ torch.diag(Lambda) @ V.conj().T - (P[:, None] * P[None, :]).to(torch.complex128)
    torch.testing.assert_close(rebuilt, A.to(torch.complex128))
    torch.testing.assert_close(Lambda.real, torch.full((8,), -0.5))  # HiPPO-N's eigenvalues


def test_s4d_inits():
    lin = s4d_init(4, "lin")
    torch.testing.assert_close(lin.imag, math.pi * torch.arange(4.0))
    inv = s4d_init(4, "inv")  # N = 8: 8/pi (8/(2n+1) - 1)
    torch.testing.assert_close(inv.imag, 8 / math.pi * (8 / (2 * torch.arange(4.0) + 1) - 1))
    assert (lin.real == -0.5).all() and (inv.real == -0.5).all()


def test_fft_convolution_equals_direct_and_conv1d():
    torch.manual_seed(0)
    u, k = torch.randn(2, 13, 3), torch.randn(3, 20)
    direct = direct_causal_conv(u, k)
    torch.testing.assert_close(fft_causal_conv(u, k), direct)
    # a third route: conv1d (a correlation) with the kernel flipped and T - 1 zeros on the left
    conv = torch.nn.functional.conv1d(
        torch.nn.functional.pad(u.transpose(1, 2), (12, 0)), k[:, :13].flip(-1)[:, None], groups=3
    )
    torch.testing.assert_close(conv.transpose(1, 2), direct)


def test_vandermonde_kernel_equals_powers_of_the_diagonal():
    torch.manual_seed(0)
    coefficients = torch.randn(2, 3, dtype=torch.complex128)
    dtA = torch.complex(-torch.rand(2, 3), torch.randn(2, 3))
    expected = torch.stack(
        [2 * (coefficients * torch.exp(dtA) ** l).sum(-1).real for l in range(6)], dim=-1
    )  # (H, L)
    torch.testing.assert_close(vandermonde_kernel(coefficients, dtA, 6), expected)


def test_krylov_and_bilinear():
    torch.manual_seed(0)
    A = torch.randn(2, 4, 4, dtype=torch.complex128) * 0.3
    b = torch.randn(5, 2, 4, dtype=torch.complex128)
    expected = torch.stack(
        [torch.einsum("hij,bhj->bhi", torch.linalg.matrix_power(A, l), b) for l in range(7)], 2
    )
    torch.testing.assert_close(krylov(A, b, 7), expected)
    dense, B, dt = torch.randn(4, 4), torch.randn(2, 4), torch.tensor([0.1, 0.5])
    A_bar, B_bar = discretize_bilinear(dense, B, dt)
    for h in range(2):
        inverse = torch.linalg.inv(torch.eye(4) - dt[h] / 2 * dense)
        torch.testing.assert_close(A_bar[h], inverse @ (torch.eye(4) + dt[h] / 2 * dense))
        torch.testing.assert_close(B_bar[h], inverse @ (dt[h] * B[h]))


def _ssm(init="lin"):
    torch.manual_seed(0)
    return DiagonalSSM(3, 8, init=init, dt_min=0.05, dt_max=0.5).double()


def test_diagonal_ssm_convolution_equals_recurrence_outputs_and_gradients():
    for init in ("lin", "inv"):
        ssm, u = _ssm(init), torch.randn(2, 17, 3)
        y_conv, h_conv = ssm(u, mode="convolution")
        y_rec, h_rec = ssm(u, mode="recurrent")
        torch.testing.assert_close(y_conv, y_rec)
        torch.testing.assert_close(h_conv, h_rec)
        grads = []
        for mode in ("convolution", "recurrent"):
            ssm.zero_grad()
            y, h = ssm(u, mode=mode)
            (y.pow(2).sum() + h.abs().sum()).backward()
            grads.append([p.grad.clone() for p in ssm.parameters()])
        for g_conv, g_rec in zip(*grads):
            torch.testing.assert_close(g_conv, g_rec)


def test_diagonal_ssm_impulse_response_is_the_kernel_and_chunks_carry_the_state():
    ssm = _ssm()
    impulse = torch.zeros(1, 10, 3)
    impulse[:, 0] = 1
    y, _ = ssm(impulse, mode="recurrent")
    kernel = ssm.kernel(10)
    kernel[:, 0] += ssm.D
    torch.testing.assert_close(y[0].T, kernel)
    u = torch.randn(2, 12, 3)
    whole, _ = ssm(u)
    first, h = ssm(u[:, :5])
    second, h = ssm(u[:, 5:9], h)
    third, _ = ssm(u[:, 9:], h, mode="recurrent")
    torch.testing.assert_close(torch.cat([first, second, third], 1), whole)


def test_short_causal_conv_in_pieces_equals_whole():
    torch.manual_seed(0)
    conv, x = CausalDepthwiseConv(4, 3).double(), torch.randn(2, 9, 4)
    whole, _ = conv(x)
    a, past = conv(x[:, :4])
    b, past = conv(x[:, 4:5], past)
    c, _ = conv(x[:, 5:], past)
    torch.testing.assert_close(torch.cat([a, b, c], 1), whole)
    assert torch.equal(whole[:, :4], conv(x[:, :4])[0])  # causal: the future changes nothing
