"""NeRF: a neural radiance field — an MLP from a 3-D point and view direction to colour and density.

Paper: "NeRF: Representing Scenes as Neural Radiance Fields for View Synthesis" (Mildenhall,
Srinivasan, Tancik, Barron, Ramamoorthi & Ng, 2020, arXiv:2003.08934).

- Positional encoding gamma(p) = (p, sin(2^0 pi p), cos(2^0 pi p), ..., sin(2^(L-1) pi p), cos(...))
  per coordinate: MLPs are biased towards smooth functions ("spectral bias"), and the high
  frequencies let them represent fine detail. L = 10 for positions and 4 for directions.
- The density sigma depends on the position only (geometry is view-independent); the colour also
  sees the direction (specular highlights). The position is re-injected half-way (a skip).
- `volume_render` turns samples along a ray into a pixel: alpha_i = 1 - exp(-sigma_i delta_i),
  T_i = prod_{j<i} (1 - alpha_j), colour = sum_i T_i alpha_i c_i. Everything is differentiable,
  so the MLP is trained from photographs alone.

Input: points (B, N, 3) and unit directions (B, N, 3) -> NeRFOutput(rgb (B, N, 3) in [0, 1],
sigma (B, N) >= 0). The defaults are scaled down (width 64, 4 layers); the paper's network is
`width=256, n_layers=8, skip_layer=4, dir_width=128` (the `nerf_paper` preset).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    pos_freqs: int = option(10, min=0)  # L for positions
    dir_freqs: int = option(4, min=0)  # L for directions
    d_model: int = 64  # MLP width (256 in the paper)
    n_layers: int = 4  # layers of the position trunk (8 in the paper)
    skip_layer: int = option(
        2, min=0
    )  # re-inject gamma(x) into the input of this layer (4 in the paper: the 5th)
    dir_width: int = option(32, min=1)  # width of the view-dependent colour layer (128 in the paper)


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """(..., C) -> (..., C * (1 + 2 n_freqs)): x, then sin/cos of 2^k pi x for k < n_freqs."""
    freqs = (2.0 ** torch.arange(n_freqs, device=x.device, dtype=x.dtype)) * math.pi  # (L,)
    angles = x[..., None, :] * freqs[:, None]  # (..., L, C)
    encoded = torch.stack([angles.sin(), angles.cos()], dim=-2)  # (..., L, 2, C)
    return torch.cat([x, encoded.flatten(-3)], dim=-1)


@dataclass
class NeRFOutput:
    rgb: torch.Tensor  # (B, N, 3) in [0, 1]
    sigma: torch.Tensor  # (B, N) volume density >= 0


@register(
    "nerf",
    family="vision",
    config=Config,
    summary="NeRF: positional-encoded MLP mapping 3-D points + view directions to colour and density.",
    paper="NeRF: Representing Scenes as Neural Radiance Fields for View Synthesis",
    year=2020,
    arxiv="2003.08934",
    input_kind="points",
    tiny=dict(pos_freqs=4, dir_freqs=2, d_model=16, n_layers=2, skip_layer=1, dir_width=8),
    presets={
        "nerf_paper": Preset(
            dict(d_model=256, n_layers=8, skip_layer=4, dir_width=128),
            params=None,
            source="the paper gives the layer sizes (Fig. 7) but no parameter count",
        )
    },
    outputs="NeRFOutput(rgb (B, N, 3), sigma (B, N))",
)
class NeRF(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        if not 0 < c.skip_layer < c.n_layers:
            raise ValueError(
                f"skip_layer must be in 1..n_layers-1, got {c.skip_layer} with n_layers={c.n_layers}"
            )
        self.config = config
        self.num_features = c.d_model
        pos_dim = 3 * (1 + 2 * c.pos_freqs)
        dir_dim = 3 * (1 + 2 * c.dir_freqs)
        self.trunk = nn.ModuleList(
            nn.Linear(pos_dim if i == 0 else c.d_model + (pos_dim if i == c.skip_layer else 0), c.d_model)
            for i in range(c.n_layers)
        )
        self.sigma_head = nn.Linear(c.d_model, 1)
        self.feature = nn.Linear(c.d_model, c.d_model)  # no activation, as in the paper
        self.dir_layer = nn.Linear(c.d_model + dir_dim, c.dir_width)
        self.rgb_head = nn.Linear(c.dir_width, 3)

    def forward_features(self, points: torch.Tensor, dirs: torch.Tensor | None = None) -> torch.Tensor:
        """Points (B, N, 3) -> the position trunk's features (B, N, d_model): what both the
        density head and the view-dependent colour branch read. `dirs` is accepted so that this
        takes the same inputs as `forward`, and ignored: the trunk sees positions only."""
        check_shape(points, "B N C", name="points", C=3)
        c = self.config
        encoded = positional_encoding(points, c.pos_freqs)  # (B, N, 3 (1 + 2 L))
        h = encoded
        for i, layer in enumerate(self.trunk):
            if i == c.skip_layer:
                h = torch.cat([h, encoded], dim=-1)  # the skip: give the deep layers x again
            h = F.relu(layer(h))  # (B, N, d_model)
        return h

    def forward(self, points: torch.Tensor, dirs: torch.Tensor) -> NeRFOutput:
        check_shape(points, "B N C", name="points", C=3)
        check_shape(dirs, "B N C", name="dirs", C=3)
        if dirs.shape[:2] != points.shape[:2]:
            raise ValueError(
                f"points {tuple(points.shape)} and dirs {tuple(dirs.shape)} need the same (B, N)"
            )
        h = self.forward_features(points)  # (B, N, d_model)
        sigma = F.relu(self.sigma_head(h)).squeeze(-1)  # (B, N): density depends on position only
        h = torch.cat([self.feature(h), positional_encoding(dirs, self.config.dir_freqs)], dim=-1)
        rgb = torch.sigmoid(self.rgb_head(F.relu(self.dir_layer(h))))  # (B, N, 3)
        return NeRFOutput(rgb=rgb, sigma=sigma)

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> dict[str, torch.Tensor]:
        dirs = F.normalize(torch.randn(batch, 16, 3), dim=-1)
        return {"points": torch.randn(batch, 16, 3), "dirs": dirs}


def volume_render(
    rgb: torch.Tensor, sigma: torch.Tensor, t_vals: torch.Tensor, background: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Alpha-composite samples along rays.

    rgb (R, S, 3), sigma (R, S), t_vals (R, S) increasing distances -> (colour (R, 3), weights (R, S)).
    The last sample's interval is taken as infinite (it absorbs whatever density is left).
    """
    deltas = t_vals[:, 1:] - t_vals[:, :-1]  # (R, S - 1)
    deltas = torch.cat([deltas, torch.full_like(deltas[:, :1], 1e10)], dim=1)  # (R, S)
    alpha = 1.0 - torch.exp(-sigma * deltas)  # probability that the ray stops in this interval
    # transmittance: probability of reaching sample i unblocked, prod_{j<i} (1 - alpha_j)
    transmittance = torch.cumprod(
        torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], dim=1), dim=1
    )
    weights = alpha * transmittance[:, :-1]  # (R, S)
    colour = (weights[..., None] * rgb).sum(dim=1) + background * (1.0 - weights.sum(dim=1, keepdim=True))
    return colour, weights
