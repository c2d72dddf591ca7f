"""HGRN-2: HGRN's gated recurrence with its state expanded by an outer product, which turns it into
gated linear attention.

Paper: "HGRN2: Gated Linear RNNs with State Expansion" (Qin, Yang, Sun, Shen, Li, Sun & Zhong,
2024, arXiv:2404.07904).

HGRN keeps one number per channel: h_t = f_t ⊙ h_{t-1} + (1 - f_t) ⊙ i_t. Its memory is as wide
as the model. HGRN-2 widens it without new parameters by replacing the elementwise product of the
input gate (1 - f_t) and the input i_t with an outer product, per head:

    S_t = diag(f_t) S_{t-1} + (1 - f_t)^T i_t        (d_head x d_head per head)
    o_t = q_t S_t

which is gated linear attention (GLA) with key k_t = 1 - f_t, value i_t, query q_t and per-key-
channel decay f_t: the same parallel / chunkwise / recurrent machinery
(`bestiary.layers.linear_attention`). The forget gate keeps HGRN's lower bounds, learned and
rising with depth (`ForgetGateLowerBounds`). The output is RMS-normed and projected.

Simplified: q uses swish as in the reference implementation; no short convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import (
    MODES,
    ForgetGateLowerBounds,
    attend_with_cache,
    bounded_forget_gate,
)
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50272
    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 8  # the state per head is (d_model / n_heads)^2: the expansion
    d_ff: int = 2816
    mlp: str = "swiglu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class HGRN2Mixer(nn.Module):
    """(B, T, D) -> (B, T, D): HGRN's gated recurrence with an outer-product (matrix) state."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        layer: int = 0,
        lower_bounds: ForgetGateLowerBounds | None = None,
        norm_eps: float = 1e-6,
        mode: str = "chunkwise",
        chunk_size: int = 64,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.layer, self.lower_bounds = layer, lower_bounds
        self.mode, self.chunk_size = mode, chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.forget_proj = nn.Linear(d_model, d_model, bias=True)
        self.input_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """The expanded state per head, (B, H, head_dim, head_dim)."""
        return RecurrentState(self, batch, ("state",))

    def forget_gate(self, x: torch.Tensor) -> torch.Tensor:
        """f_t in [lb, 1), (B, T, D)."""
        if self.lower_bounds is None:
            bound = x.new_zeros(self.d_model)
        else:
            bound = self.lower_bounds(self.layer).to(x.dtype)
        return bounded_forget_gate(self.forget_proj(x), bound)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H, Dh = self.n_heads, self.head_dim
        f = self.forget_gate(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        q = F.silu(self.q_proj(x)).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh)
        i = self.input_proj(x).view(B, T, H, Dh).transpose(1, 2)  # (B, H, T, Dh): the values
        k = 1 - f  # the input gate, tied to the forget gate, becomes the key
        out = attend_with_cache(self, q, k, i, f.log(), cache, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache.length += T
        return self.out_proj(self.norm(out.transpose(1, 2).reshape(B, T, self.d_model)))


@register(
    "hgrn_v2",
    family="attention",
    config=Config,
    summary="HGRN with outer-product state expansion: a gated linear attention with bounded forget gates.",
    paper="HGRN2: Gated Linear RNNs with State Expansion",
    year=2024,
    arxiv="2404.07904",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class HGRN2(CausalLM):
    def __init__(self, config: Config):
        c = config
        bounds = ForgetGateLowerBounds(c.n_layers, c.d_model)
        blocks = prenorm_blocks(
            c,
            lambda i: HGRN2Mixer(
                c.d_model,
                c.n_heads,
                layer=i,
                lower_bounds=bounds,
                norm_eps=c.norm_eps,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
