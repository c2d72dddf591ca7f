"""KAN layers: the B-spline basis against independent references, KANLinear and the KAT rational unit
against direct NumPy evaluations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bestiary.layers.checks import ShapeError
from bestiary.layers.kan import (
    GRKANLinear,
    GroupRational,
    KANLinear,
    bspline_basis,
    fit_rational,
    rational,
    uniform_grid,
)


def cox_de_boor(t: np.ndarray, i: int, p: int, x: float) -> float:
    """B_{i,p}(x) on knots t, by the textbook recursion written as a recursive function."""
    if p == 0:
        return 1.0 if t[i] <= x < t[i + 1] else 0.0
    left = (x - t[i]) / (t[i + p] - t[i]) * cox_de_boor(t, i, p - 1, x)
    right = (t[i + p + 1] - x) / (t[i + p + 1] - t[i + 1]) * cox_de_boor(t, i + 1, p - 1, x)
    return left + right


@pytest.mark.parametrize("order", [0, 1, 2, 3])
def test_bspline_basis_matches_recursive_cox_de_boor(order):
    grid = uniform_grid(2, grid_size=4, spline_order=order, grid_range=(-1.0, 2.0)).double()
    x = torch.rand(7, 2, dtype=torch.float64) * 5 - 2  # (7, 2): inside and outside the grid
    basis = bspline_basis(x, grid, order)  # (7, 2, 4 + order)
    assert basis.shape == (7, 2, 4 + order)
    t = grid[0].numpy()
    for b in range(7):
        for f in range(2):
            expected = [cox_de_boor(t, c, order, x[b, f].item()) for c in range(4 + order)]
            np.testing.assert_allclose(basis[b, f].numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bspline_basis_matches_scipy():
    interpolate = pytest.importorskip("scipy.interpolate")
    order, G = 3, 6
    grid = uniform_grid(1, G, order, (-1.0, 1.0)).double()
    t = grid[0].numpy()
    x = np.linspace(-1.0, 0.999, 50)
    ours = bspline_basis(torch.from_numpy(x).unsqueeze(1), grid, order)[:, 0]  # (50, G + k)
    for c in range(G + order):
        coef = np.zeros(G + order)
        coef[c] = 1.0
        expected = interpolate.BSpline(t, coef, order, extrapolate=False)(x)
        np.testing.assert_allclose(ours[:, c].numpy(), expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_bspline_partition_of_unity_inside_the_grid(order):
    grid = uniform_grid(3, grid_size=5, spline_order=order, grid_range=(-2.0, 1.0)).double()
    x = torch.rand(100, 3, dtype=torch.float64) * 3 - 2  # inside [-2, 1)
    total = bspline_basis(x, grid, order).sum(-1)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-12)
    outside = bspline_basis(torch.full((1, 3), 50.0, dtype=torch.float64), grid, order)
    assert outside.abs().sum() == 0  # the splines vanish far outside the extended grid


def test_uniform_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="grid_range"):
        uniform_grid(2, 4, 3, (1.0, -1.0))
    with pytest.raises(ValueError, match="grid_size"):
        uniform_grid(2, 0, 3)


def test_kan_linear_matches_direct_numpy_sum_over_edges():
    torch.manual_seed(0)
    layer = KANLinear(3, 2, grid_size=4, spline_order=3, grid_range=(-1.0, 1.0)).double()
    with torch.no_grad():
        layer.spline_coef.normal_()
        layer.spline_scale.uniform_(0.5, 1.5)
    x = torch.rand(5, 3, dtype=torch.float64) * 2.4 - 1.2  # a few points outside the grid too
    out = layer(x)
    t = layer.grid[0].numpy()
    wb, coef, ws = (p.detach().numpy() for p in (layer.base_weight, layer.spline_coef, layer.spline_scale))
    expected = np.zeros((5, 2))
    for b in range(5):
        for j in range(2):
            for i in range(3):
                xi = x[b, i].item()
                silu = xi / (1 + np.exp(-xi))
                spline = sum(coef[j, i, c] * cox_de_boor(t, c, 3, xi) for c in range(7))
                expected[b, j] += wb[j, i] * silu + ws[j, i] * spline
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    # edge_functions gives the same numbers edge by edge
    torch.testing.assert_close(layer.edge_functions(x).sum(-1), out)


def test_kan_linear_gradients_match_finite_differences():
    torch.manual_seed(0)
    layer = KANLinear(2, 2, grid_size=3, spline_order=2).double()
    x = (torch.rand(4, 2, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: layer(x), (x,))


def test_kan_linear_wrong_width_raises():
    with pytest.raises(ShapeError, match=r"expected .* shape"):
        KANLinear(3, 2)(torch.randn(4, 5))


def numpy_rational(x: np.ndarray, a: np.ndarray, b: np.ndarray, n_groups: int) -> np.ndarray:
    """P(x) / (1 + |Q(x)|) with P = sum_j a_j x^j, Q = sum_j b_j x^j (j >= 1), per channel group."""
    out = np.empty_like(x)
    group_width = x.shape[-1] // n_groups
    for ch in range(x.shape[-1]):
        g = ch // group_width
        xc = x[..., ch]
        p = sum(a[g, j] * xc**j for j in range(a.shape[1]))
        q = sum(b[g, j - 1] * xc**j for j in range(1, b.shape[1] + 1))
        out[..., ch] = p / (1 + np.abs(q))
    return out


def test_rational_matches_numpy_with_group_sharing():
    torch.manual_seed(0)
    n_groups, D = 3, 6
    a = torch.randn(n_groups, 6, dtype=torch.float64)  # degree 5
    b = torch.randn(n_groups, 4, dtype=torch.float64)  # degree 4
    x = torch.randn(2, 5, D, dtype=torch.float64)
    ours = rational(x, a, b)
    np.testing.assert_allclose(
        ours.numpy(), numpy_rational(x.numpy(), a.numpy(), b.numpy(), n_groups), rtol=1e-12
    )
    # group sharing: channels 0 and 1 share group 0, so equal inputs give equal outputs
    same = torch.full((1, D), 0.7, dtype=torch.float64)
    y = rational(same, a, b)[0]
    assert y[0] == y[1] and y[2] == y[3] and y[0] != y[2]


def test_rational_gradients_match_finite_differences():
    torch.manual_seed(0)
    a = torch.randn(2, 6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(rational, (x, a, b))


def test_rational_rejects_indivisible_groups():
    with pytest.raises(ValueError, match="divisible"):
        rational(torch.randn(2, 5), torch.randn(2, 6), torch.randn(2, 4))
    with pytest.raises(ValueError, match="divisible"):
        GroupRational(10, n_groups=4)


@pytest.mark.parametrize("function", ["gelu", "silu"])
def test_rational_init_approximates_its_target(function):
    unit = GroupRational(8, n_groups=2, init=function).double()
    x = torch.linspace(-3, 3, 301, dtype=torch.float64).unsqueeze(1).expand(-1, 8)
    target = getattr(F, function)(x)
    assert (unit(x) - target).abs().max() < 5e-3  # a good fit on the fitted range
    a, b = fit_rational(function, 5, 4)
    assert len(a) == 6 and len(b) == 4


def test_identity_init_is_exactly_the_identity():
    unit = GroupRational(4, n_groups=2, init="identity")
    x = torch.randn(3, 4)
    torch.testing.assert_close(unit(x), x, rtol=0, atol=0)


def test_grkan_linear_is_rational_then_linear():
    torch.manual_seed(0)
    layer = GRKANLinear(8, 3, n_groups=4, init="gelu").double()
    x = torch.randn(2, 5, 8, dtype=torch.float64)
    a, b = layer.act.numerator.detach().numpy(), layer.act.denominator.detach().numpy()
    W, bias = layer.linear.weight.detach().numpy(), layer.linear.bias.detach().numpy()
    expected = numpy_rational(x.numpy(), a, b, 4) @ W.T + bias
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12)


def test_refine_grid_keeps_the_function_when_knots_are_nested():
    torch.manual_seed(0)
    layer = KANLinear(3, 2, grid_size=4, spline_order=3, grid_range=(-1.0, 1.0)).double()
    with torch.no_grad():
        layer.spline_coef.normal_()
    x = torch.rand(50, 3, dtype=torch.float64) * 2 - 1  # inside the grid
    before = layer(x)
    layer.refine_grid(8)  # every old knot is a new knot: a cubic on the coarse grid is one on the fine grid
    assert layer.spline_coef.shape == (2, 3, 8 + 3) and layer.grid.shape == (3, 8 + 2 * 3 + 1)
    torch.testing.assert_close(layer(x), before, rtol=1e-9, atol=1e-9)


def test_refine_grid_non_nested_is_a_close_least_squares_fit():
    torch.manual_seed(0)
    layer = KANLinear(2, 2, grid_size=4, spline_order=3).double()
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    before = layer(x)
    layer.refine_grid(7)  # not nested: the fit is approximate, but close for a smooth spline
    assert (layer(x) - before).abs().max() < 0.05 * before.abs().max()
    assert layer.grid_range == (-1.0, 1.0)
