"""The four forms of h_t = a_t h_{t-1} + b_t agree with the loop that defines it."""

import pytest
import torch

from bestiary.layers.scan import scan_cumsum, scan_hillis_steele, scan_log_space, scan_sequential


def _inputs(T, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(2, T, 3, 4, generator=g, dtype=dtype) * 0.5 + 0.45  # decays in (0.45, 0.95)
    b = torch.randn(2, T, 3, 4, generator=g, dtype=dtype)
    h0 = torch.randn(2, 3, 4, generator=g, dtype=dtype)
    return a, b, h0


@pytest.mark.parametrize("T", [1, 2, 7, 64, 100])
@pytest.mark.parametrize("with_h0", [False, True])
def test_parallel_forms_equal_the_loop(T, with_h0):
    a, b, h0 = _inputs(T)
    h0 = h0 if with_h0 else None
    reference = scan_sequential(a, b, h0)
    torch.testing.assert_close(scan_hillis_steele(a, b, h0), reference)
    torch.testing.assert_close(scan_cumsum(a, b, h0, chunk_size=16), reference)
    torch.testing.assert_close(scan_cumsum(a, b, h0, chunk_size=None), reference)


def test_complex_decays_scan_too():
    a, b, h0 = _inputs(33)
    rotation = torch.polar(a, torch.full_like(a, 0.3))  # |a| < 1, turning: S5 / LRU's complex diagonal
    bc = torch.complex(b, -b)
    reference = scan_sequential(rotation, bc, h0.to(bc.dtype))
    torch.testing.assert_close(scan_hillis_steele(rotation, bc, h0.to(bc.dtype)), reference)
    torch.testing.assert_close(scan_cumsum(rotation, bc, h0.to(bc.dtype), chunk_size=8), reference)


def test_log_space_scan_equals_the_loop_for_positive_inputs():
    a, b, h0 = _inputs(50)
    b, h0 = b.abs() + 0.1, h0.abs() + 0.1
    torch.testing.assert_close(scan_log_space(a.log(), b.log()).exp(), scan_sequential(a, b))
    torch.testing.assert_close(scan_log_space(a.log(), b.log(), h0.log()).exp(), scan_sequential(a, b, h0))


def test_one_long_cumsum_chunk_overflows_where_short_chunks_do_not():
    # why scan_cumsum works chunk by chunk: 0.5^2000 underflows to 0 and b / A becomes inf
    a = torch.full((1, 2000, 1), 0.5, dtype=torch.float32)
    b = torch.ones(1, 2000, 1)
    reference = scan_sequential(a, b)
    assert not torch.isfinite(scan_cumsum(a, b, chunk_size=None)).all()
    torch.testing.assert_close(scan_cumsum(a, b, chunk_size=32), reference)


def test_gradients_agree():
    a, b, h0 = _inputs(20)
    grads = []
    for scan in (scan_sequential, scan_hillis_steele, lambda a, b, h: scan_cumsum(a, b, h, chunk_size=8)):
        a_, b_, h_ = (t.clone().requires_grad_() for t in (a, b, h0))
        scan(a_, b_, h_).pow(2).sum().backward()
        grads.append([t.grad for t in (a_, b_, h_)])
    for other in grads[1:]:
        for g_ref, g in zip(grads[0], other):
            torch.testing.assert_close(g, g_ref)
