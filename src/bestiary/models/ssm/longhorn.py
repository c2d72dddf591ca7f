"""Longhorn: a state-space layer whose recurrence is the closed-form step of online regression.

Paper: "Longhorn: State Space Models are Amortized Online Learners" (Liu, Wang, Wu, Stone & Liu,
2024, arXiv:2407.14207).

Read an SSM's state as a model fitted online: at each token, the state S (one row s_i per channel i)
should predict the channel's input x_i from a key k_t, without moving far from what it was. Longhorn
takes that objective literally and solves it in closed form at every step:

    s_t,i = argmin_s ||s - s_{t-1},i||^2 + beta_t,i (s . k_t - x_t,i)^2
          = (I - eps_t,i k_t k_t^T) s_{t-1},i + eps_t,i x_t,i k_t,    eps = beta / (1 + beta k_t . k_t)

and keeps the diagonal of (I - eps k k^T) so the update stays an elementwise linear recurrence:

    S_t = (1 - eps_t ⊗ k_t^2) ⊙ S_{t-1} + (eps_t ⊙ x_t) ⊗ k_t,      y_t = S_t q_t + D ⊙ x_t

The forget factor 1 - eps k^2 lies in (0, 1] by construction: no separate forget gate is needed,
and the step size beta = sigmoid(Linear(x)) is the only learned "dt". Everything around the
recurrence is Mamba's block (in-projection with a SiLU gate, a short causal conv, out-projection).
The elementwise recurrence runs as a parallel scan (`mode="parallel"`, Hillis-Steele, no division,
so no overflow) or as the loop (`mode="recurrent"`, and always for single decoding steps).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.scan import scan_hillis_steele, scan_sequential
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register

SCANS = {"parallel": scan_hillis_steele, "recurrent": scan_sequential}


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_277
    d_model: int = 768
    n_layers: int = 24
    d_state: int = 16  # N: the size of keys and queries (each channel's regression weights)
    expand: int = option(2, min=1)  # d_inner = expand * d_model
    kernel_size: int = 4  # the short causal conv
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mode: str = option("parallel", choices=tuple(SCANS))


class LonghornMixer(nn.Module):
    """x (B, T, D) -> (B, T, D). cache: RecurrentState with "conv" (B, k - 1, d_inner) and
    "S" (B, d_inner, N), the regression weights of every channel."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.d_state, self.mode = c.d_model, c.d_state, c.mode
        self.d_inner = c.expand * c.d_model
        self.in_proj = nn.Linear(c.d_model, 2 * self.d_inner, bias=False)  # x and the gate z
        self.conv = CausalDepthwiseConv(self.d_inner, c.kernel_size)
        self.qk_proj = nn.Linear(self.d_inner, 2 * c.d_state, bias=False)  # the query and the key
        self.beta_proj = nn.Linear(self.d_inner, self.d_inner)  # the step size of the online update
        self.D = nn.Parameter(torch.ones(self.d_inner))
        self.out_proj = nn.Linear(self.d_inner, c.d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "S"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, d_inner) each
        u, conv_past = self.conv(u, None if cache is None else cache["conv"])
        u = F.silu(u)
        q, k = self.qk_proj(u).chunk(2, dim=-1)  # (B, T, N) each
        beta = torch.sigmoid(self.beta_proj(u))  # (B, T, d_inner)
        eps = beta / (1 + beta * (k * k).sum(-1, keepdim=True))  # (B, T, d_inner)
        forget = 1 - eps[..., None] * (k * k)[:, :, None, :]  # (B, T, d_inner, N): diag(I - eps k k^T)
        write = (eps * u)[..., None] * k[:, :, None, :]  # (B, T, d_inner, N): eps x k^T
        mode = "recurrent" if cache is not None and x.shape[1] == 1 else self.mode
        S = SCANS[mode](forget, write, None if cache is None else cache["S"])  # (B, T, d_inner, N)
        y = torch.einsum("btin,btn->bti", S, q) + self.D * u
        if cache is not None:
            cache["conv"], cache["S"] = conv_past, S[:, -1]
            cache.length += x.shape[1]
        return self.out_proj(y * F.silu(z))


@register(
    "longhorn",
    family="ssm",
    config=Config,
    summary="Longhorn: SSM whose state update is the closed-form online-regression step (no forget gate).",
    paper="Longhorn: State Space Models are Amortized Online Learners",
    year=2024,
    arxiv="2407.14207",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=4),
    outputs="logits (B, T, vocab_size)",
)
class Longhorn(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: LonghornMixer(c), mlp=None, norm=c.norm)
        super().__init__(config, blocks)
