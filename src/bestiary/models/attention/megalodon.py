"""MEGALODON: Mega with a complex EMA, timestep normalisation and chunked attention, for unlimited context.

Paper: "Megalodon: Efficient LLM Pretraining and Inference with Unlimited Context Length"
(Xuezhe Ma et al., 2024, arXiv:2404.08801).

Mega (EMA + single-head gated attention) scaled up, with four changes:
- CEMA, a complex EMA: each of the N EMA dims of a channel turns by an angle θ_n = 2π n/N ω per step,
      h_t = α e^(iθ) ⊙ β x_t + (1 - α δ) e^(iθ) ⊙ h_{t-1},   y_t = Re(ηᵀ h_t)
  a damped oscillation instead of a pure decay (`DampedEMA(rotate=True)`, shared with Mega);
- timestep normalisation: a group norm whose mean and variance at step t are taken over the
  group's channels AND all steps <= t (cumulative), so it is causal and, unlike LayerNorm, sees
  the statistics of the sequence so far;
- normalised attention: the shared query/key representation Z is L2-normalised before the per-dim
  scales and offsets make Q and K (bounded logits, stable at scale);
- chunked attention: the sequence is cut into chunks of `chunk_size` and attention stays inside a
  chunk; information crosses chunks only through the EMA, so cost is linear in the length;
and a two-hop residual: the MLP's residual is the block's input, out = X + MLP(LN(Y)).

Simplified: the timestep norm keeps running sums (not Welford's update); no 4-D chunk parallelism;
the cache keeps every past key (only the current chunk's are read); SwiGLU as the MLP.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import make_mlp, make_norm
from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.attention_variants import DampedEMA, KVExtrasCache
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.options import Rule, option
from bestiary.registry import register


class MegalodonCache(KVExtrasCache):
    """Past keys and values (extras, different widths), the CEMA state, the timestep norm's sums."""

    def __init__(self) -> None:
        super().__init__(("keys", "values"))
        self.ema_state: torch.Tensor | None = None
        self.norm_sums: tuple[torch.Tensor, torch.Tensor] | None = None  # sum and sum of squares (B, G)

    def crop(self, length: int) -> None:
        raise TypeError("MEGALODON's EMA and norm states mix every position: they cannot forget positions")


class TimestepNorm(nn.Module):
    """Causal group norm: x_t normalised by the mean/variance of its group over channels and steps <= t."""

    def __init__(self, d_model: int, n_groups: int, eps: float = 1e-5):
        super().__init__()
        self.n_groups, self.eps = n_groups, eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model))

    def forward(
        self, x: torch.Tensor, sums: tuple[torch.Tensor, torch.Tensor] | None = None, start: int = 0
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T, D) -> normalised x, and the running (sum, sum of squares) per group (B, G).
        `sums` and `start` (steps already seen) continue the statistics from a cache."""
        B, T, D = x.shape
        groups = x.view(B, T, self.n_groups, D // self.n_groups)  # (B, T, G, D/G)
        total = groups.sum(dim=-1).cumsum(dim=1)  # (B, T, G): sums over steps <= t
        total_sq = groups.pow(2).sum(dim=-1).cumsum(dim=1)
        if sums is not None:
            total, total_sq = total + sums[0][:, None], total_sq + sums[1][:, None]
        count = torch.arange(start + 1, start + T + 1, device=x.device, dtype=x.dtype)[:, None] * (
            D // self.n_groups
        )
        mean = total / count  # (B, T, G)
        var = (total_sq / count - mean.pow(2)).clamp_min(0)
        normed = (groups - mean[..., None]) * torch.rsqrt(var[..., None] + self.eps)
        return normed.reshape(B, T, D) * self.weight + self.bias, (total[:, -1], total_sq[:, -1])


class MegalodonLayer(nn.Module):
    """Timestep norm -> CEMA -> chunked, normalised single-head gated attention (Mega's gates).

    Returns φ ⊙ (H - X): with the block's residual, Y = φ ⊙ H + (1 - φ) ⊙ X as in the paper."""

    def __init__(
        self,
        d_model: int,
        *,
        qk_dim: int,
        v_dim: int,
        ema_dims: int,
        chunk_size: int,
        n_groups: int,
        norm_eps: float,
        mode: str = "fft",
    ):
        super().__init__()
        self.d_model, self.qk_dim, self.v_dim, self.chunk_size = d_model, qk_dim, v_dim, chunk_size
        self.norm = TimestepNorm(d_model, n_groups, norm_eps)
        self.ema = DampedEMA(d_model, ema_dims, mode, rotate=True)
        self.v_proj = nn.Linear(d_model, v_dim)
        self.z_proj = nn.Linear(d_model, qk_dim)
        self.gates_proj = nn.Linear(d_model, v_dim + 2 * d_model)  # reset gate, candidate, update gate
        self.qk_scale = nn.Parameter(torch.ones(2, qk_dim))  # κ_q, κ_k
        self.qk_offset = nn.Parameter(torch.zeros(2, qk_dim))  # μ_q, μ_k
        self.out_proj = nn.Linear(v_dim, d_model)

    def init_cache(self, batch: int, **_: object) -> MegalodonCache:
        return MegalodonCache()

    def forward(self, x: torch.Tensor, *, cache: MegalodonCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        T = x.shape[1]
        start = 0 if cache is None else cache.length
        normed, sums = self.norm(x, None if cache is None else cache.norm_sums, start)
        smoothed, ema_state = self.ema(normed, None if cache is None else cache.ema_state)
        smoothed = F.silu(smoothed)  # X' (B, T, D)
        v = F.silu(self.v_proj(normed))  # (B, T, v)
        z = F.normalize(self.z_proj(smoothed), dim=-1)  # (B, T, z): unit length, "normalised attention"
        q = z * self.qk_scale[0] + self.qk_offset[0]
        k = z * self.qk_scale[1] + self.qk_offset[1]
        reset, candidate, update = self.gates_proj(smoothed).split(
            [self.v_dim, self.d_model, self.d_model], dim=-1
        )
        if cache is not None:
            cache.ema_state, cache.norm_sums = ema_state, sums
            k = cache.update_extra("keys", k)  # (B, Tk, z)
            v = cache.update_extra("values", v)  # (B, Tk, v)
        # chunked attention: query i sees keys j <= i of its own chunk (same i // chunk_size)
        q_pos = torch.arange(start, start + T, device=x.device)[:, None]  # (T, 1) absolute positions
        k_pos = torch.arange(k.shape[1], device=x.device)[None, :]  # (1, Tk)
        visible = (k_pos // self.chunk_size == q_pos // self.chunk_size) & (k_pos <= q_pos)  # (T, Tk)
        # scale 1: the logits are bounded by the unit-length Z; κ learns the temperature
        attended = scaled_dot_product_attention(q[:, None], k[:, None], v[:, None], visible, scale=1.0)[:, 0]
        hidden = F.silu(candidate + self.out_proj(F.silu(reset) * attended))  # H (B, T, D)
        return torch.sigmoid(update) * (hidden - x)  # φ ⊙ (H - X): the block adds X back


class MegalodonBlock(nn.Module):
    """Y = X + MegalodonLayer(X) (the layer normalises its own input); out = X + MLP(norm(Y)): the
    two-hop residual, the MLP's shortcut skips back to the block's input."""

    def __init__(self, layer: MegalodonLayer, mlp: nn.Module, norm: nn.Module):
        super().__init__()
        self.mixer, self.mlp_norm, self.mlp = layer, norm, mlp

    def init_cache(self, batch: int, **_: object) -> MegalodonCache:
        return self.mixer.init_cache(batch)

    def forward(self, x: torch.Tensor, *, cache: MegalodonCache | None = None) -> torch.Tensor:
        y = x + self.mixer(x, cache=cache)
        return x + self.mlp(self.mlp_norm(y))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_ff: int = 256
    max_seq_len: int = 4096
    d_state: int = 16  # N: CEMA dimensions per channel
    qk_dim: int = option(64, min=1)  # z: the shared query/key width
    v_dim: int = option(256, min=1)  # v: the value width
    chunk_size: int = option(64, min=1)  # attention stays inside chunks of this length
    n_groups: int = option(4, min=1)  # timestep-norm groups
    mode: str = option("fft", choices=("fft", "recurrent"))  # CEMA: FFT convolution or recurrence
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "megalodon",
    family="attention",
    config=Config,
    summary="MEGALODON: complex EMA + timestep norm + chunked normalised gated attention, two-hop residual.",
    paper="Megalodon: Efficient LLM Pretraining and Inference with Unlimited Context Length",
    year=2024,
    arxiv="2404.08801",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        d_ff=64,
        max_seq_len=64,
        d_state=4,
        qk_dim=16,
        v_dim=32,
        chunk_size=4,
    ),
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: c.d_model % c.n_groups == 0,
            "d_model={d_model} must be divisible by n_groups={n_groups}",
            ("d_model", "n_groups"),
        )
    ],
)
class Megalodon(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = [
            MegalodonBlock(
                MegalodonLayer(
                    c.d_model,
                    qk_dim=c.qk_dim,
                    v_dim=c.v_dim,
                    ema_dims=c.d_state,
                    chunk_size=c.chunk_size,
                    n_groups=c.n_groups,
                    norm_eps=c.norm_eps,
                    mode=c.mode,
                ),
                make_mlp("swiglu", c.d_model, c.d_ff),
                make_norm("layernorm", c.d_model, c.norm_eps),
            )
            for _ in range(c.n_layers)
        ]
        super().__init__(config, blocks)
