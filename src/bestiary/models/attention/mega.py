"""Mega: moving average equipped gated attention.

Paper: "Mega: Moving Average Equipped Gated Attention" (Xuezhe Ma et al., 2022,
arXiv:2209.10655).

Softmax attention has no built-in sense of order or locality. Mega puts a learned exponential
moving average in front of it, and lets a single gated head do the rest:

- multi-dimensional damped EMA: each channel x_t is expanded to h dims by β and smoothed,
      u_t = α ⊙ β x_t + (1 - α ⊙ δ) ⊙ u_{t-1},     y_t = ηᵀ u_t      (α, δ in (0, 1))
  a linear recurrence, so it is also a causal convolution with kernel
      k_j = sum_h η_h α_h β_h (1 - α_h δ_h)^j,
  computed with FFTs in O(n log n) (`mode="fft"`) or step by step (`mode="recurrent"`); X' =
  silu(EMA(X) + ω ⊙ X). (`bestiary.layers.attention_variants.DampedEMA`, shared with MEGALODON.)
- single-head attention whose queries and keys come from X' through one shared projection Z =
  silu(W_z X') and per-dimension scales/offsets (Q = κ_q ⊙ Z + μ_q, K = κ_k ⊙ Z + μ_k); values from
  the raw input, V = silu(W_v X).
- GRU-like gates: a reset gate γ on the attention output, an update gate φ mixing the candidate
  H = silu(W_h X' + U_h(γ ⊙ O)) with the input: Y = φ ⊙ H + (1 - φ) ⊙ X.

Simplified: the Block adds the residual, so the mixer returns φ ⊙ (H - X) with X its normed input
(Mega adds it to the un-normed one); no relative position bias (the EMA carries order); softmax
attention over the whole causal prefix (no chunking); the channel mixer is SwiGLU, not Mega's NFFN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.attention_variants import DampedEMA, KVExtrasCache
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.options import option
from bestiary.registry import register


class MegaCache(KVExtrasCache):
    """Mega's decoding memory: the attention's past keys and values (extras, they differ in width)
    and the EMA's fixed-size state."""

    def __init__(self) -> None:
        super().__init__(("keys", "values"))
        self.ema_state: torch.Tensor | None = None

    def crop(self, length: int) -> None:
        raise TypeError("Mega's EMA state has mixed every position together: it cannot forget positions")

    def nbytes(self) -> int:
        ema = 0 if self.ema_state is None else self.ema_state.numel() * self.ema_state.element_size()
        return super().nbytes() + ema


class MegaLayer(nn.Module):
    """Causal EMA + single-head gated attention, x (B, T, d_model) -> (B, T, d_model)."""

    def __init__(self, d_model: int, *, qk_dim: int, v_dim: int, ema_dims: int, mode: str = "fft"):
        super().__init__()
        self.d_model, self.qk_dim, self.v_dim = d_model, qk_dim, v_dim
        self.ema = DampedEMA(d_model, ema_dims, mode)
        self.v_proj = nn.Linear(d_model, v_dim)
        # one projection of X' for Z (queries and keys), the reset gate, the candidate and the update gate
        self.mx_proj = nn.Linear(d_model, qk_dim + v_dim + 2 * d_model)
        self.qk_scale = nn.Parameter(torch.ones(2, qk_dim))  # κ_q, κ_k
        self.qk_offset = nn.Parameter(torch.zeros(2, qk_dim))  # μ_q, μ_k
        self.out_proj = nn.Linear(v_dim, d_model)  # U_h

    def init_cache(self, batch: int, **_: object) -> MegaCache:
        return MegaCache()

    def forward(self, x: torch.Tensor, *, cache: MegaCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        smoothed, ema_state = self.ema(x, None if cache is None else cache.ema_state)
        smoothed = F.silu(smoothed)  # X' (B, T, D)
        v = F.silu(self.v_proj(x))  # (B, T, v)
        z, reset, candidate, update = self.mx_proj(smoothed).split(
            [self.qk_dim, self.v_dim, self.d_model, self.d_model], dim=-1
        )
        z = F.silu(z)  # (B, T, z): shared by queries and keys
        q = z * self.qk_scale[0] + self.qk_offset[0]
        k = z * self.qk_scale[1] + self.qk_offset[1]
        if cache is not None:
            cache.ema_state = ema_state
            k = cache.update_extra("keys", k)  # (B, Tk, z)
            v = cache.update_extra("values", v)  # (B, Tk, v)
        attended = scaled_dot_product_attention(
            q[:, None], k[:, None], v[:, None], is_causal=True, scale=1 / math.sqrt(self.qk_dim)
        )[:, 0]  # (B, T, v): one head
        hidden = F.silu(candidate + self.out_proj(F.silu(reset) * attended))  # H (B, T, D)
        return torch.sigmoid(update) * (hidden - x)  # φ ⊙ (H - X): the Block adds X back


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_ff: int = 256
    max_seq_len: int = 1024
    d_state: int = 16  # N: EMA dimensions per channel
    qk_dim: int = option(64, min=1)  # z: the shared query/key width
    v_dim: int = option(256, min=1)  # v: the value width (Mega: 2 d_model)
    mode: str = option("fft", choices=("fft", "recurrent"))  # the EMA: FFT convolution or recurrence
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "mega",
    family="attention",
    config=Config,
    summary="Mega: multi-dimensional damped EMA followed by single-head gated attention.",
    paper="Mega: Moving Average Equipped Gated Attention",
    year=2022,
    arxiv="2209.10655",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, d_ff=64, max_seq_len=64, d_state=4, qk_dim=16, v_dim=32),
    outputs="logits (B, T, vocab_size)",
)
class Mega(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c, lambda _: MegaLayer(c.d_model, qk_dim=c.qk_dim, v_dim=c.v_dim, ema_dims=c.d_state, mode=c.mode)
        )
        super().__init__(config, blocks)
