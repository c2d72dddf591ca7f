"""3-D Gaussian splatting: a scene as learnable 3-D Gaussians, rasterised differentiably to images.

Paper: "3D Gaussian Splatting for Real-Time Radiance Field Rendering" (Kerbl, Kopanas, Leimkühler
& Drettakis, 2023, arXiv:2308.04079); the projection of 3-D Gaussians to 2-D ellipses is EWA
splatting (Zwicker, Pfister, van Baar & Gross, 2002).

Each Gaussian has a mean mu (3), a covariance Sigma = R S S^T R^T built from a scale (3, stored as
log) and a rotation (unit quaternion, 4) — a factorisation that keeps Sigma positive semi-definite
while gradient descent moves it — an opacity (1, stored as a logit) and a colour (3, stored as a
logit; the paper uses spherical harmonics for view dependence, degree 0 here).

Rendering a camera (world-to-camera rotation W, translation t, focal length f):
  1. camera-space mean m = W mu + t; pixel position (f m_x / m_z + c_x, f m_y / m_z + c_y);
  2. 2-D covariance Sigma' = J W Sigma W^T J^T, J the Jacobian of the perspective projection at m,
     plus 0.3 px^2 so every splat covers at least about a pixel (the reference's low-pass filter);
  3. per pixel p, each Gaussian's alpha = opacity * exp(-1/2 (p - mu')^T Sigma'^-1 (p - mu'));
  4. sort by depth and composite front to back: C = sum_i c_i alpha_i prod_{j<i} (1 - alpha_j).

Scaled down for teaching: every pixel evaluates every Gaussian (dense (H*W, G) tensors, fine for a
few thousand Gaussians on small images) instead of the paper's tile-based CUDA rasteriser, and
there is no adaptive densification/pruning. Input: world-to-camera matrices (B, 4, 4);
output: SplatOutput(image (B, 3, H, W), alpha (B, 1, H, W)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    n_gaussians: int = option(256, min=1)
    image_size: int = 32  # rendered images are image_size x image_size
    focal: float = 32.0  # focal length in pixels
    init_radius: float = 1.0  # initial means are uniform in a cube of this half-width
    init_scale: float = 0.1
    near: float = 0.01  # Gaussians closer than this (or behind the camera) are skipped
    dilation: float = 0.3  # px^2 added to every projected covariance


@dataclass
class SplatOutput:
    image: torch.Tensor  # (B, 3, H, W)
    alpha: torch.Tensor  # (B, 1, H, W) accumulated opacity


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """(G, 4) quaternions (w, x, y, z), normalised here -> (G, 3, 3) rotation matrices."""
    w, x, y, z = F.normalize(q, dim=-1).unbind(-1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).view(-1, 3, 3)  # fmt: skip


def project_gaussians(
    means: torch.Tensor, covariances: torch.Tensor, world_to_camera: torch.Tensor, focal: float, center: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """3-D Gaussians -> pixel means (G, 2), 2-D covariances (G, 2, 2) and depths (G,) for one camera."""
    W, t = world_to_camera[:3, :3], world_to_camera[:3, 3]
    m = means @ W.T + t  # (G, 3) camera-space means
    z = m[:, 2].clamp(min=1e-6)
    pixels = focal * m[:, :2] / z[:, None] + center  # (G, 2) as (x, y)
    # Jacobian of (f x / z, f y / z) w.r.t. (x, y, z): the local affine approximation of EWA splatting
    J = torch.zeros(means.shape[0], 2, 3, dtype=means.dtype, device=means.device)
    J[:, 0, 0] = focal / z
    J[:, 1, 1] = focal / z
    J[:, 0, 2] = -focal * m[:, 0] / z**2
    J[:, 1, 2] = -focal * m[:, 1] / z**2
    JW = J @ W  # (G, 2, 3)
    cov2d = JW @ covariances @ JW.transpose(1, 2)  # (G, 2, 2)
    return pixels, cov2d, m[:, 2]


@register(
    "gaussian_splat",
    family="vision",
    config=Config,
    summary="3-D Gaussian splatting: learnable anisotropic Gaussians alpha-composited into images.",
    paper="3D Gaussian Splatting for Real-Time Radiance Field Rendering",
    year=2023,
    arxiv="2308.04079",
    input_kind="custom",
    tiny=dict(n_gaussians=16, image_size=8, focal=8.0),
    outputs="SplatOutput(image (B, 3, H, W), alpha (B, 1, H, W))",
)
class GaussianSplat(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.config = config
        self.num_features = G = c.n_gaussians
        self.means = nn.Parameter((torch.rand(G, 3) * 2 - 1) * c.init_radius)
        self.log_scales = nn.Parameter(torch.full((G, 3), float(torch.tensor(c.init_scale).log())))
        self.quaternions = nn.Parameter(torch.cat([torch.ones(G, 1), torch.zeros(G, 3)], dim=1))
        self.opacity_logits = nn.Parameter(torch.zeros(G))  # sigmoid(0) = 0.5
        self.color_logits = nn.Parameter(torch.randn(G, 3) * 0.5)

    def covariances(self) -> torch.Tensor:
        """Sigma = R S S^T R^T, (G, 3, 3): PSD by construction."""
        RS = quaternion_to_rotation(self.quaternions) * self.log_scales.exp()[:, None, :]  # R @ diag(s)
        return RS @ RS.transpose(1, 2)

    def compositing_weights(self, world_to_camera: torch.Tensor) -> torch.Tensor:
        """How much each Gaussian contributes to each pixel for one camera (4, 4): (H*W, G),
        alpha_i * prod_{j<i} (1 - alpha_j) with i, j in depth order, columns in Gaussian order."""
        c = self.config
        H = W = c.image_size
        center = (c.image_size - 1) / 2  # pixel (i, j) has its centre at integer coordinates
        pixels, cov2d, depth = project_gaussians(
            self.means, self.covariances(), world_to_camera, c.focal, center
        )
        cov2d = cov2d + c.dilation * torch.eye(2, dtype=cov2d.dtype, device=cov2d.device)
        visible = depth > c.near
        order = torch.argsort(torch.where(visible, depth, torch.full_like(depth, float("inf"))))
        pixels, cov2d, visible = pixels[order], cov2d[order], visible[order]
        opacity = torch.sigmoid(self.opacity_logits[order]) * visible  # cameras never see what is behind them
        ys, xs = torch.meshgrid(
            torch.arange(H, dtype=pixels.dtype, device=pixels.device),
            torch.arange(W, dtype=pixels.dtype, device=pixels.device),
            indexing="ij",
        )
        grid = torch.stack([xs, ys], dim=-1).view(-1, 1, 2)  # (P, 1, 2) pixel centres as (x, y)
        d = grid - pixels  # (P, G, 2)
        inv = torch.linalg.inv(cov2d)  # (G, 2, 2)
        mahalanobis = torch.einsum("pgi,gij,pgj->pg", d, inv, d)  # (P, G)
        alpha = (opacity * torch.exp(-0.5 * mahalanobis)).clamp(max=0.99)  # (P, G), clamped as in the paper
        # front-to-back: T_i = prod_{j<i} (1 - alpha_j)
        transmittance = torch.cumprod(
            torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha[:, :-1]], dim=1), dim=1
        )
        weights = alpha * transmittance  # (P, G), columns in depth order
        return torch.zeros_like(weights).index_copy(1, order, weights)  # back to Gaussian order

    def forward_features(self, world_to_camera: torch.Tensor) -> torch.Tensor:
        """Cameras (B, 4, 4) -> compositing weights (B, H*W, n_gaussians): the rasteriser's output
        before the colours are mixed in (`forward`: image = weights @ colours)."""
        check_shape(world_to_camera, "B R C", name="world_to_camera", R=4, C=4)
        return torch.stack([self.compositing_weights(pose) for pose in world_to_camera])

    def forward(self, world_to_camera: torch.Tensor) -> SplatOutput:
        weights = self.forward_features(world_to_camera)  # (B, H*W, G)
        B, size = weights.shape[0], self.config.image_size
        colors = torch.sigmoid(self.color_logits)  # (G, 3)
        image = (weights @ colors).transpose(1, 2).reshape(B, 3, size, size)  # (B, 3, H, W)
        return SplatOutput(image=image, alpha=weights.sum(dim=2).view(B, 1, size, size))

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> torch.Tensor:
        return look_at_cameras(batch, distance=3.0)


def look_at_cameras(n: int, distance: float = 3.0, elevation: float = 0.3) -> torch.Tensor:
    """`n` world-to-camera matrices (n, 4, 4) on a circle around the origin, looking at it."""
    poses = []
    for i in range(n):
        angle = 2 * torch.pi * i / max(n, 1)
        eye = torch.tensor(
            [distance * torch.cos(torch.tensor(angle)), elevation, distance * torch.sin(torch.tensor(angle))]
        )
        forward = F.normalize(-eye, dim=0)  # camera z axis points at the origin
        # OpenCV convention: x right, y down (image rows grow downwards), z forward; x = y cross z
        right = F.normalize(torch.linalg.cross(torch.tensor([0.0, -1.0, 0.0]), forward), dim=0)
        down = torch.linalg.cross(forward, right)
        R = torch.stack([right, down, forward])  # rows: camera axes in world coordinates
        pose = torch.eye(4)
        pose[:3, :3] = R
        pose[:3, 3] = -R @ eye
        poses.append(pose)
    return torch.stack(poses)
