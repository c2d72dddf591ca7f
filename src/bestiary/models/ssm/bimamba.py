"""BiMamba: a bidirectional Mamba encoder, one selective scan forward in time and one backward.

Papers: "Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space
Model" (Lianghui Zhu, Bencheng Liao, Qian Zhang, Xinlong Wang, Wenyu Liu & Xinggang Wang, 2024,
arXiv:2401.09417), whose bidirectional Mamba block this is; the same block is used for DNA by
Caduceus (Schiff et al., 2024, arXiv:2403.03234) and for speech and other sequences as "BiMamba".

A Mamba scan is causal: position t only sees positions <= t, which suits generation but wastes
half of the context in an encoder (classification, tagging, image patches). The bidirectional
block shares the input projection (x, z) and the output projection between two directions, runs
a forward selective SSM on the sequence and a backward one (its own conv, dt, A, B, C, D) on the
reversed sequence, flips the backward result back, gates both with SiLU(z) and averages them:

    y = out_proj( (ssm_fwd(x) + flip(ssm_bwd(flip(x)))) / 2 * SiLU(z) )

so every output sees the whole sequence, at the cost of two scans. Each layer is
x + BiMambaMixer(RMSNorm(x)); the model is a sequence encoder (B, T, in_dim) -> (B, T, d_model)
with an optional head: per-token logits (tagging) or mean-pooled logits (classification).
Not causal, so no decoding cache. Simplified: Vim's class token and 2-D patch embedding are left to
the vision models; the tokens here are any sequence of feature vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.checks import check_shape
from bestiary.layers.mamba import SCANS, MambaMixer
from bestiary.layers.norms import make_norm
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    in_dim: int = 16
    d_model: int = 64
    n_layers: int = 4
    d_state: int = 16
    d_conv: int = option(4, min=1)
    expand: int = option(2, min=1)
    scan: str = option("sequential", choices=SCANS)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    num_classes: int | None = None  # None: no head, forward returns the features
    pool: str = option("none", choices=("none", "mean"))  # "none": a label per token; "mean": per sequence


class BiMambaMixer(nn.Module):
    """Two MambaMixers, one per direction, sharing in_proj and out_proj (Vision Mamba's block).

    Because out_proj is linear and both directions see the same z, averaging the two mixers'
    outputs is the formula of the module docstring: y = out_proj((y_fwd + y_bwd) / 2 * SiLU(z))."""

    def __init__(self, d_model: int, *, d_state: int, d_conv: int, expand: int, scan: str):
        super().__init__()
        options = dict(d_state=d_state, d_conv=d_conv, expand=expand, scan=scan)
        self.forward_ssm = MambaMixer(d_model, **options)
        self.backward_ssm = MambaMixer(d_model, **options)
        self.backward_ssm.in_proj = self.forward_ssm.in_proj  # shared: one x and one z for both
        self.backward_ssm.out_proj = self.forward_ssm.out_proj

    def init_cache(self, batch: int) -> None:
        raise ValueError("BiMamba reads the sequence in both directions: there is no incremental decoding")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model); output t depends on every position."""
        forward = self.forward_ssm(x)
        backward = self.backward_ssm(x.flip(1)).flip(1)  # scan from the end, then back in order
        return (forward + backward) / 2


@register(
    "bimamba",
    family="ssm",
    config=Config,
    summary="Bidirectional Mamba encoder (Vision Mamba's block): a forward and a backward selective scan per layer.",
    paper="Vision Mamba: Efficient Visual Representation Learning with Bidirectional State Space Model",
    year=2024,
    arxiv="2401.09417",
    input_kind="sequence",
    causal=False,
    tiny=dict(in_dim=6, d_model=16, n_layers=2, d_state=4, num_classes=3),
    outputs="(B, T, d_model) features, or logits (B, T, num_classes) / (B, num_classes) with pool='mean'",
)
class BiMamba(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.embed = nn.Linear(c.in_dim, c.d_model)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                BiMambaMixer(c.d_model, d_state=c.d_state, d_conv=c.d_conv, expand=c.expand, scan=c.scan),
                None,
                norm=c.norm,
                norm_eps=c.norm_eps,
            )
            for _ in range(c.n_layers)
        )
        self.norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.head = nn.Linear(c.d_model, c.num_classes) if c.num_classes else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, in_dim) -> (B, T, d_model)."""
        check_shape(x, "B T D", name="x", D=self.config.in_dim)
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.norm(h)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, d_model) -> per-token logits (B, T, C), or (B, C) pooled over T with pool='mean'."""
        if self.config.pool == "mean":
            features = features.mean(dim=1)  # (B, d_model)
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
