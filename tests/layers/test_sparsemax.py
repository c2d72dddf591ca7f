"""Sparsemax against two independent references (the sorted closed form written here, and a
bisection on the threshold), the KKT conditions of the simplex projection, and finite differences."""

import numpy as np
import pytest
import torch

from bestiary.layers.sparsemax import Sparsemax, sparsemax


def sparsemax_reference(z: np.ndarray) -> np.ndarray:
    """Martins & Astudillo (2016), Algorithm 1, one vector at a time."""
    z_sorted = np.sort(z)[::-1]
    k_max = max(k for k in range(1, len(z) + 1) if 1 + k * z_sorted[k - 1] > z_sorted[:k].sum())
    tau = (z_sorted[:k_max].sum() - 1) / k_max
    return np.maximum(z - tau, 0.0)


def projection_by_bisection(z: np.ndarray, iters: int = 200) -> np.ndarray:
    """Euclidean projection onto the simplex: find tau with sum(max(z - tau, 0)) = 1 by bisection."""
    lo, hi = z.min() - 1.0, z.max()  # the sum is >= 1 at lo and 0 at hi
    for _ in range(iters):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if np.maximum(z - mid, 0).sum() > 1 else (lo, mid)
    return np.maximum(z - (lo + hi) / 2, 0.0)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_sparsemax_matches_closed_form_and_bisection(scale):
    torch.manual_seed(0)
    z = scale * torch.randn(20, 7, dtype=torch.float64)
    p = sparsemax(z, dim=-1).numpy()
    for row, zr in zip(p, z.numpy()):
        np.testing.assert_allclose(row, sparsemax_reference(zr), rtol=0, atol=1e-12)
        np.testing.assert_allclose(row, projection_by_bisection(zr), rtol=0, atol=1e-10)


def test_sparsemax_satisfies_the_kkt_conditions_of_the_projection():
    torch.manual_seed(1)
    z = 3 * torch.randn(50, 9, dtype=torch.float64)
    p = sparsemax(z)
    # primal feasibility: on the simplex
    assert (p >= 0).all()
    torch.testing.assert_close(p.sum(-1), torch.ones(50, dtype=torch.float64))
    # stationarity: p - z + tau * 1 - mu = 0 with mu >= 0, mu * p = 0, i.e. z - p equals one tau on
    # the support, and every coordinate outside the support has z <= tau
    for zr, pr in zip(z, p):
        support = pr > 0
        tau = (zr - pr)[support]
        torch.testing.assert_close(tau, tau.mean().expand_as(tau))
        assert (zr[~support] <= tau.mean() + 1e-12).all()
    assert (p == 0).any(), "with spread-out scores some outputs must be exactly zero"


def test_sparsemax_other_dims_and_shift_invariance():
    torch.manual_seed(2)
    z = torch.randn(3, 5, 4, dtype=torch.float64)
    along_1 = sparsemax(z, dim=1)
    torch.testing.assert_close(along_1, sparsemax(z.transpose(1, 2), dim=-1).transpose(1, 2))
    torch.testing.assert_close(sparsemax(z + 100.0), sparsemax(z))
    torch.testing.assert_close(Sparsemax(dim=1)(z), along_1)


def test_sparsemax_gradient_matches_finite_differences():
    torch.manual_seed(3)
    z = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: sparsemax(z, -1), (z,))
    z2 = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: sparsemax(z, 1), (z2,))


def test_sparsemax_of_a_dominant_score_is_one_hot():
    p = sparsemax(torch.tensor([[5.0, 0.0, -1.0]]))
    assert p.tolist() == [[1.0, 0.0, 0.0]]
