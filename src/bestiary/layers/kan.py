"""Kolmogorov–Arnold layers: learnable functions on the edges instead of fixed activations on the nodes.

Two families of learnable 1-D functions, shared by the `kan`, `kat` and `vision_kan` models:

* B-splines — "KAN: Kolmogorov-Arnold Networks" (Liu et al., 2024, arXiv:2404.19756). Every edge
  i -> j of a `KANLinear` layer carries its own function
  phi_ji(x) = w_base[j, i] * silu(x) + w_spline[j, i] * sum_c coef[j, i, c] * B_c(x),
  where B_c are the B-spline basis functions of order k on a grid of G intervals.
* Rational functions — "Kolmogorov-Arnold Transformer" (Yang & Wang, 2024, arXiv:2409.10594).
  A "safe" Padé unit F(x) = P(x) / (1 + |Q(x)|) with P of degree m and Q of degree n without a
  constant term (so the denominator is >= 1 and never has a pole). GR-KAN shares one set of
  coefficients per *group* of channels and follows it with an ordinary linear map: far fewer
  parameters and FLOPs than one spline per edge, which is what makes KAN layers fit in a transformer.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import ShapeError

# ----------------------------------------------------------------------------------------------
# B-splines
# ----------------------------------------------------------------------------------------------


def uniform_grid(
    in_dim: int, grid_size: int, spline_order: int, grid_range: tuple[float, float] = (-1.0, 1.0)
) -> torch.Tensor:
    """Knots for `grid_size` equal intervals on `grid_range`, extended by `spline_order` knots each side.

    Returns (in_dim, grid_size + 2 * spline_order + 1): one row of knots per input feature. The
    extension is what lets every point inside `grid_range` be covered by exactly k+1 non-zero basis
    functions of order k (the basis is a partition of unity there).
    """
    if grid_size < 1 or spline_order < 0:
        raise ValueError(f"need grid_size >= 1 and spline_order >= 0, got {grid_size}, {spline_order}")
    lo, hi = grid_range
    if not hi > lo:
        raise ValueError(f"grid_range must be (low, high) with low < high, got {grid_range}")
    h = (hi - lo) / grid_size
    knots = lo + h * torch.arange(-spline_order, grid_size + spline_order + 1, dtype=torch.float32)
    return knots.expand(in_dim, -1).contiguous()  # (in_dim, G + 2k + 1)


def bspline_basis(x: torch.Tensor, grid: torch.Tensor, spline_order: int) -> torch.Tensor:
    """All B-spline basis functions of order `spline_order` at `x`, by the Cox–de Boor recursion.

    x (..., in_dim), grid (in_dim, n_knots) -> (..., in_dim, n_knots - 1 - spline_order).

    Order 0: B_c(x) = 1 on [t_c, t_{c+1}), else 0. Order p from order p-1:
    B_c,p(x) = (x - t_c) / (t_{c+p} - t_c) * B_c,p-1(x) + (t_{c+p+1} - x) / (t_{c+p+1} - t_{c+1}) * B_c+1,p-1(x).
    """
    x = x.unsqueeze(-1)  # (..., in_dim, 1): broadcast against the knots of that feature
    grid = grid.to(x.dtype)
    basis = ((x >= grid[:, :-1]) & (x < grid[:, 1:])).to(x.dtype)  # (..., in_dim, n_knots - 1)
    for p in range(1, spline_order + 1):
        left = (x - grid[:, : -(p + 1)]) / (grid[:, p:-1] - grid[:, : -(p + 1)]) * basis[..., :-1]
        right = (grid[:, p + 1 :] - x) / (grid[:, p + 1 :] - grid[:, 1:-p]) * basis[..., 1:]
        basis = left + right  # (..., in_dim, n_knots - 1 - p)
    return basis


class KANLinear(nn.Module):
    """A KAN layer: in_dim x out_dim learnable edge functions, summed at each output node.

    x (..., in_dim) -> (..., out_dim). Outside `grid_range` the spline part is zero and only the
    SiLU "base" part remains, so a KAN network should see inputs roughly inside the grid (the paper
    re-fits the grid to the data; we keep it fixed and let the base branch handle the tails).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range: tuple[float, float] = (-1.0, 1.0),
        spline_noise: float = 0.1,
    ):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.grid_size, self.spline_order = grid_size, spline_order
        n_basis = grid_size + spline_order
        self.register_buffer("grid", uniform_grid(in_dim, grid_size, spline_order, grid_range))
        # w_base: like an ordinary Linear layer on silu(x) (the paper's "residual" branch)
        self.base_weight = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        # spline coefficients start as small noise, so each edge starts close to w_base * silu(x)
        self.spline_coef = nn.Parameter(
            spline_noise * torch.randn(out_dim, in_dim, n_basis) / math.sqrt(in_dim)
        )
        # w_spline: a per-edge scale on the spline (initialised to 1 as in the paper)
        self.spline_scale = nn.Parameter(torch.ones(out_dim, in_dim))

    def edge_functions(self, x: torch.Tensor) -> torch.Tensor:
        """phi_ji(x_i) for every edge: x (..., in_dim) -> (..., out_dim, in_dim). For plots and tests."""
        basis = bspline_basis(x, self.grid, self.spline_order)  # (..., in, n_basis)
        spline = torch.einsum("...ic,oic->...oi", basis, self.spline_coef) * self.spline_scale
        return self.base_weight * F.silu(x).unsqueeze(-2) + spline  # (..., out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 0 or x.shape[-1] != self.in_dim:
            raise ShapeError(f"expected x of shape (..., F={self.in_dim}), got {tuple(x.shape)}")
        base = F.linear(F.silu(x), self.base_weight)  # (..., out)
        basis = bspline_basis(x, self.grid, self.spline_order)  # (..., in, n_basis)
        # sum over inputs i and basis functions c in one contraction (never builds (..., out, in))
        weights = self.spline_coef * self.spline_scale.unsqueeze(-1)  # (out, in, n_basis)
        return base + torch.einsum("...ic,oic->...o", basis, weights)  # (..., out)

    @property
    def grid_range(self) -> tuple[float, float]:
        """The interval the splines cover (the knots beyond it are the order-k extension)."""
        k = self.spline_order
        return float(self.grid[0, k]), float(self.grid[0, -k - 1])

    @torch.no_grad()
    def refine_grid(self, grid_size: int, grid_range: tuple[float, float] | None = None) -> None:
        """Re-grid the splines (the paper's "grid extension"), keeping each edge function as it is.

        New coefficients are the least-squares fit of the new basis to the current splines, sampled
        densely on the old range. When the new grid contains the old knots (same range, grid_size a
        multiple of the old one) the fit is exact: a coarse spline is also a fine spline. Start
        coarse, train, refine, train on: the paper's way to add resolution without starting over.
        Parameter shapes change, so build the optimizer again after calling this.
        """
        k, lo_hi = self.spline_order, self.grid_range
        new_grid = uniform_grid(self.in_dim, grid_size, k, grid_range or lo_hi).to(self.grid)
        n_samples = 4 * (grid_size + k) + 1
        # samples on [low, high): at `high` itself only part of the basis is defined (half-open intervals)
        x = torch.linspace(*lo_hi, n_samples + 1, dtype=torch.float64, device=self.grid.device)[:-1]
        x = x.unsqueeze(1).expand(-1, self.in_dim)  # (N, in): the same samples for every input
        old_basis = bspline_basis(x, self.grid.double(), k)  # (N, in, G_old + k)
        new_basis = bspline_basis(x, new_grid.double(), k)  # (N, in, G_new + k)
        targets = torch.einsum("nic,oic->ino", old_basis, self.spline_coef.double())  # (in, N, out)
        solution = torch.linalg.lstsq(new_basis.transpose(0, 1), targets).solution  # (in, G_new + k, out)
        self.grid = new_grid
        self.spline_coef = nn.Parameter(solution.permute(2, 0, 1).to(self.spline_coef.dtype).contiguous())
        self.grid_size = grid_size

    def extra_repr(self) -> str:
        return f"{self.in_dim}, {self.out_dim}, grid_size={self.grid_size}, spline_order={self.spline_order}"


# ----------------------------------------------------------------------------------------------
# Rational functions (KAT)
# ----------------------------------------------------------------------------------------------


def rational(x: torch.Tensor, numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
    """Group-shared safe rational function F(x) = P(x) / (1 + |Q(x)|), applied elementwise.

    x (..., D); numerator (G, m+1) holds a_0..a_m; denominator (G, n) holds b_1..b_n (no constant:
    Q(0) = 0 so the denominator is at least 1). Channels are split into G contiguous groups of
    D / G; group g uses row g of the coefficients.
    """
    n_groups = numerator.shape[0]
    D = x.shape[-1]
    if D % n_groups:
        raise ValueError(f"the last dimension ({D}) must be divisible by the number of groups ({n_groups})")
    xg = x.reshape(*x.shape[:-1], n_groups, D // n_groups)  # (..., G, D/G)
    a = numerator.unsqueeze(-1)  # (G, m+1, 1): broadcast over the channels of a group
    b = denominator.unsqueeze(-1)  # (G, n, 1)
    # Horner's rule: P = a_0 + x (a_1 + x (a_2 + ...)), cheaper and stabler than summing powers
    p = a[:, -1]
    for j in range(a.shape[1] - 2, -1, -1):
        p = p * xg + a[:, j]
    q = b[:, -1]
    for j in range(b.shape[1] - 2, -1, -1):
        q = q * xg + b[:, j]
    q = q * xg  # Q = x (b_1 + x (b_2 + ...)): no constant term
    return (p / (1 + q.abs())).reshape(x.shape)  # (..., D)


@functools.cache
def fit_rational(
    function: str, num_degree: int, den_degree: int
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Coefficients (a_0..a_m, b_1..b_n) with P/(1+|Q|) ≈ `function` on [-3, 3].

    P - f * s * Q = f is linear in the coefficients once the sign s = sign(Q(x)) is fixed, so a few
    rounds of least squares (updating s each round) solve it; deterministic and instant. Used to
    start a KAT layer from a known activation (the paper initialises from identity and GELU).
    """
    x = torch.linspace(-3, 3, 1001, dtype=torch.float64)
    if function == "identity":
        return (0.0, 1.0) + (0.0,) * (num_degree - 1), (0.0,) * den_degree
    targets = {"gelu": F.gelu, "silu": F.silu, "relu": F.relu}
    if function not in targets:
        raise ValueError(f"unknown rational init {function!r}; choose identity, {', '.join(targets)}")
    f = targets[function](x)
    powers_p = x.unsqueeze(1) ** torch.arange(num_degree + 1)  # (N, m+1)
    powers_q = x.unsqueeze(1) ** torch.arange(1, den_degree + 1)  # (N, n)
    sign = torch.ones_like(x)
    for _ in range(5):
        A = torch.cat([powers_p, -(f * sign).unsqueeze(1) * powers_q], dim=1)  # (N, m+1+n)
        coef = torch.linalg.lstsq(A, f.unsqueeze(1)).solution.squeeze(1)
        q = powers_q @ coef[num_degree + 1 :]
        sign = torch.where(q >= 0, 1.0, -1.0).to(x.dtype)
    return tuple(coef[: num_degree + 1].tolist()), tuple(coef[num_degree + 1 :].tolist())


class GroupRational(nn.Module):
    """The learnable activation of GR-KAN: one rational function per group of channels.

    x (..., dim) -> (..., dim). `init` names the function the unit starts as ("identity", "gelu",
    "silu", "relu"): all groups start identical and drift apart during training.
    """

    def __init__(
        self, dim: int, n_groups: int = 8, num_degree: int = 5, den_degree: int = 4, init: str = "gelu"
    ):
        super().__init__()
        if dim % n_groups:
            raise ValueError(f"dim={dim} must be divisible by n_groups={n_groups}")
        self.dim, self.n_groups = dim, n_groups
        a, b = fit_rational(init, num_degree, den_degree)
        self.numerator = nn.Parameter(torch.tensor(a, dtype=torch.float32).repeat(n_groups, 1))  # (G, m+1)
        self.denominator = nn.Parameter(torch.tensor(b, dtype=torch.float32).repeat(n_groups, 1))  # (G, n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rational(x, self.numerator, self.denominator)

    def extra_repr(self) -> str:
        m, n = self.numerator.shape[1] - 1, self.denominator.shape[1]
        return f"dim={self.dim}, n_groups={self.n_groups}, degrees=({m}, {n})"


class GRKANLinear(nn.Module):
    """A GR-KAN layer: group-rational activation on the inputs, then a linear map.

    Equivalent to a KAN layer whose edge function phi_ji(x) = w_ji * F_g(i)(x): the function is shared
    by every edge leaving an input of the same group, and only the scale w_ji is per edge.
    """

    def __init__(self, in_dim: int, out_dim: int, n_groups: int = 8, init: str = "gelu", bias: bool = True):
        super().__init__()
        self.act = GroupRational(in_dim, n_groups, init=init)
        self.linear = nn.Linear(in_dim, out_dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.act(x))
