"""Ways to tell attention where each token is.

Attention itself is permutation-invariant: shuffle the keys and the output does not change. So
every transformer injects position somewhere:

- `SinusoidalPositions`: fixed sin/cos waves added to the embeddings ("Attention Is All You Need",
  Vaswani et al., 2017, arXiv:1706.03762).
- `LearnedPositions`: one trained vector per position (GPT-2, BERT).
- `RotaryEmbedding` (RoPE): rotate each (q, k) pair of dimensions by an angle proportional to the
  position, so q·k depends only on the offset between them ("RoFormer: Enhanced Transformer with
  Rotary Position Embedding", Su et al., 2021, arXiv:2104.09864). Context extension hooks: linear
  position interpolation (Chen et al., 2023, arXiv:2306.15595), "NTK-aware" base scaling, or any
  callable that rewrites the frequencies (`YaRN` below, Llama-3 style).
- ALiBi: no embedding at all, a per-head linear penalty on distance added to the scores ("Train
  Short, Test Long", Press et al., 2021, arXiv:2108.12409).
- `RelativePositionBias`: T5's learned bias per (head, bucketed distance) ("Exploring the Limits of
  Transfer Learning with a Unified Text-to-Text Transformer", Raffel et al., 2019, arXiv:1910.10683).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(n_positions, dim): PE[p, 2i] = sin(p / base^(2i/dim)), PE[p, 2i+1] = cos(same)."""
    if dim % 2:
        raise ValueError(f"sinusoidal positions need an even dim, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]  # (P, 1)
    freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    table = torch.zeros(n_positions, dim)
    table[:, 0::2] = torch.sin(pos * freq)  # even dims: sine
    table[:, 1::2] = torch.cos(pos * freq)  # odd dims: cosine of the same frequency
    return table


class SinusoidalPositions(nn.Module):
    """Fixed sinusoidal position vectors: positions (start .. start+T-1) -> (T, dim). No parameters."""

    def __init__(self, dim: int, max_seq_len: int = 4096, base: float = 10000.0):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.register_buffer("table", sinusoidal_table(max_seq_len, dim, base), persistent=False)

    def forward(self, seq_len: int, start_pos: int = 0) -> torch.Tensor:
        _check_range(start_pos, seq_len, self.max_seq_len)
        return self.table[start_pos : start_pos + seq_len]  # (T, dim)


class LearnedPositions(nn.Module):
    """A trained vector per position: (T,) positions -> (T, dim). Cannot go past max_seq_len."""

    def __init__(self, max_seq_len: int, dim: int):
        super().__init__()
        self.max_seq_len = max_seq_len
        self.weight = nn.Parameter(torch.randn(max_seq_len, dim) * 0.02)

    def forward(self, seq_len: int, start_pos: int = 0) -> torch.Tensor:
        _check_range(start_pos, seq_len, self.max_seq_len)
        return self.weight[start_pos : start_pos + seq_len]  # (T, dim)


def _check_range(start_pos: int, seq_len: int, max_seq_len: int) -> None:
    if start_pos < 0 or start_pos + seq_len > max_seq_len:
        raise ValueError(f"positions {start_pos}..{start_pos + seq_len - 1} exceed max_seq_len={max_seq_len}")


# ---------------------------------------------------------------------------------------- RoPE
def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dim: a 90° turn of each (x1_i, x2_i) pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding for heads of size `head_dim`.

    Pair i of dimensions, (x[i], x[i + D/2]) (the "half-split" layout of GPT-NeoX / Llama in
    `transformers`), turns by angle p * θ_i at position p, with θ_i = theta^(-2i/D). Since a
    rotation by a then the inverse of a rotation by b is a rotation by a - b,
    <R_p q, R_s k> = <q, R_{s-p} k>: scores depend on the offset only.

    Context extension (all optional):
      scaling_type="linear", scaling_factor=s: positions are divided by s (position interpolation);
      scaling_type="ntk", scaling_factor=s: theta is raised to theta * s^(D/(D-2)) so the lowest
        frequency stretches by s while the highest barely moves;
      scaling=f: any callable inv_freq (D/2,) -> new inv_freq (D/2,), applied last (`YaRN`, Llama 3);
      attention_factor=m: cos and sin are multiplied by m, so every q·k score by m² (YaRN's
        temperature: longer contexts flatten attention, a slightly larger scale sharpens it back).
    """

    def __init__(
        self,
        head_dim: int,
        theta: float = 10000.0,
        scaling_factor: float = 1.0,
        scaling_type: str = "linear",
        scaling: Callable[[torch.Tensor], torch.Tensor] | None = None,
        attention_factor: float = 1.0,
    ):
        super().__init__()
        self.attention_factor = attention_factor
        if head_dim % 2:
            raise ValueError(f"RoPE needs an even head_dim, got {head_dim}")
        if scaling_type not in ("linear", "ntk"):
            raise ValueError(f"scaling_type must be 'linear' or 'ntk', got {scaling_type!r}")
        if scaling_factor <= 0:
            raise ValueError(f"scaling_factor must be > 0, got {scaling_factor}")
        self.head_dim = head_dim
        self.position_scale = 1.0
        if scaling_type == "ntk":
            theta = theta * scaling_factor ** (head_dim / (head_dim - 2))
        else:
            self.position_scale = 1.0 / scaling_factor
        self.theta = theta
        self.scaling = scaling
        self._inv_freq_on: dict[torch.device, torch.Tensor] = {}  # per-device copies, made on first use

    @property
    def inv_freq(self) -> torch.Tensor:
        """θ_i = theta^(-2i/D), i = 0 .. D/2-1, (D/2,) float32. Computed from the settings, not stored
        as a buffer (D/2 numbers): the module has no state, so it survives meta-device construction and
        dtype casts unchanged."""
        inv_freq = self.theta ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64) / self.head_dim)
        if self.scaling is not None:
            inv_freq = self.scaling(inv_freq)
        return inv_freq.float()

    def cos_sin(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """positions (T,) or (B, T) -> cos, sin of shape (..., T, D)."""
        inv_freq = self._inv_freq_on.get(positions.device)
        if inv_freq is None:  # computed once per device: decoding calls this for every layer and token
            inv_freq = self._inv_freq_on[positions.device] = self.inv_freq.to(positions.device)
        angles = positions.float()[..., None] * self.position_scale * inv_freq  # (..., T, D/2)
        angles = torch.cat([angles, angles], dim=-1)  # (..., T, D): pair i uses dims i and i + D/2
        if self.attention_factor != 1.0:
            return angles.cos() * self.attention_factor, angles.sin() * self.attention_factor
        return angles.cos(), angles.sin()

    def forward(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Rotate x (B, H, T, D) by its positions: (T,) shared by the batch, or (B, T)."""
        return apply_rotary(x, *self.cos_sin(positions.to(x.device)))


class YaRN:
    """YaRN's frequencies for a context `factor` times longer than the one trained on.

    Paper: "YaRN: Efficient Context Window Extension of Large Language Models" (Peng, Quesnelle,
    Fan & Shippole, 2023, arXiv:2309.00071), "NTK-by-parts" interpolation (Sec. 3.2) plus a
    temperature (Sec. 3.4).

    RoPE pair i turns by angle p * θ_i. Over the original context of L positions it completes
    L θ_i / 2π rotations. High-frequency pairs (many rotations) encode short offsets, which a longer
    context does not change: leave them alone (extrapolate). Low-frequency pairs (less than one
    rotation over L) would meet angles never seen in training: divide their frequency by `factor`
    (interpolate, as position interpolation does for every pair). In between, blend linearly. The
    boundaries are the pairs completing `beta_fast` (32) and `beta_slow` (1) rotations over L; like
    the authors' code (and `transformers`), the blend is linear in the pair index between those two
    pairs, rounded outwards to whole pairs.

    The temperature: attention logits are multiplied by (0.1 ln(factor) + 1)², applied as
    `attention_factor` = 0.1 ln(factor) + 1 on both cos and sin.

        yarn = YaRN(factor=4, original_max_seq_len=2048, head_dim=64, theta=10000)
        rope = RotaryEmbedding(64, 10000, scaling=yarn, attention_factor=yarn.attention_factor)
    """

    def __init__(
        self,
        factor: float,
        original_max_seq_len: int,
        *,
        head_dim: int,
        theta: float = 10000.0,
        beta_fast: float = 32.0,
        beta_slow: float = 1.0,
    ):
        if factor < 1:
            raise ValueError(f"YaRN extends a context: factor must be >= 1, got {factor}")
        self.factor, self.original_max_seq_len = factor, original_max_seq_len
        self.head_dim, self.theta = head_dim, theta
        self.beta_fast, self.beta_slow = beta_fast, beta_slow
        self.attention_factor = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0

    def pair_with_rotations(self, n_rotations: float) -> float:
        """The (fractional) pair index i whose wavelength fits n_rotations times into the original
        context: L θ_i / 2π = n_rotations with θ_i = theta^(-2i/D), solved for i."""
        L, D = self.original_max_seq_len, self.head_dim
        return D * math.log(L / (n_rotations * 2 * math.pi)) / (2 * math.log(self.theta))

    def __call__(self, inv_freq: torch.Tensor) -> torch.Tensor:
        n_pairs = inv_freq.shape[0]
        first = max(math.floor(self.pair_with_rotations(self.beta_fast)), 0)  # last pair left alone
        last = min(
            math.ceil(self.pair_with_rotations(self.beta_slow)), self.head_dim - 1
        )  # fully interpolated
        if first == last:
            last += 0.001  # a single boundary: avoid dividing by zero
        pair = torch.arange(n_pairs, dtype=inv_freq.dtype)
        interpolate = ((pair - first) / (last - first)).clamp(0, 1)  # 0: keep θ_i, 1: θ_i / factor
        return inv_freq * (1 - interpolate) + inv_freq / self.factor * interpolate


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, H, T, D) by angles given as cos, sin (T, R) or (B, T, R) (from `cos_sin`).

    R < D is partial rotary (GPT-NeoX, Griffin): a `RotaryEmbedding(R)` turns the first R dims of
    each head and leaves the other D - R position-free. Separate from `RotaryEmbedding.forward` so
    that attention can compute one table for q and k."""
    if cos.dim() == 3:  # (B, T, R) -> (B, 1, T, R): same angle for every head
        cos, sin = cos[:, None], sin[:, None]
    rotary_dim = cos.shape[-1]
    if rotary_dim < x.shape[-1]:
        turned = apply_rotary(x[..., :rotary_dim], cos, sin)
        return torch.cat([turned, x[..., rotary_dim:]], dim=-1)  # (B, H, T, D)
    x32 = x.to(
        torch.promote_types(x.dtype, torch.float32)
    )  # at least float32 (bf16 -> float32; float64 stays)
    return (x32 * cos + rotate_half(x32) * sin).type_as(x)


# --------------------------------------------------------------------------------------- ALiBi
def alibi_slopes(n_heads: int) -> torch.Tensor:
    """Per-head slopes m_h of ALiBi: a geometric sequence starting at 2^(-8/n), ratio 2^(-8/n).

    For a number of heads that is not a power of two, the paper takes the slopes of the closest
    lower power of two, then the odd-indexed ones of twice that many (Press et al., Sec. 3).
    """

    def power_of_two(n: int) -> list[float]:
        start = 2.0 ** (-8.0 / n)
        return [start ** (i + 1) for i in range(n)]

    if n_heads < 1:
        raise ValueError(f"n_heads must be >= 1, got {n_heads}")
    if math.log2(n_heads).is_integer():
        slopes = power_of_two(n_heads)
    else:
        closest = 2 ** math.floor(math.log2(n_heads))
        slopes = power_of_two(closest) + power_of_two(2 * closest)[0::2][: n_heads - closest]
    return torch.tensor(slopes)


def alibi_bias(n_heads: int, t_query: int, t_key: int, device: torch.device | None = None) -> torch.Tensor:
    """Additive score bias (H, Tq, Tk) = -m_h * (i - j): the further back a key, the lower its score.

    Queries are end-aligned with the keys (as with a KV cache). Future keys (j > i) get a positive
    value here; combine with a causal mask to hide them.
    """
    q_pos = torch.arange(t_key - t_query, t_key, device=device)[:, None]  # (Tq, 1)
    k_pos = torch.arange(t_key, device=device)[None, :]  # (1, Tk)
    distance = (q_pos - k_pos).float()  # (Tq, Tk)
    return -alibi_slopes(n_heads).to(device)[:, None, None] * distance  # (H, Tq, Tk)


# ----------------------------------------------------------------------- T5 relative positions
def relative_position_bucket(
    relative_position: torch.Tensor,
    bidirectional: bool = True,
    num_buckets: int = 32,
    max_distance: int = 128,
) -> torch.Tensor:
    """Map key_pos - query_pos to one of `num_buckets` buckets (T5).

    Half the buckets (or all, if unidirectional) cover exact small distances; the rest cover
    distances up to `max_distance` on a log scale, and everything beyond shares the last bucket.
    Bidirectional: the other half of the buckets is for keys after the query.
    """
    bucket = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (relative_position > 0).long() * num_buckets  # keys in the future
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)  # only the past counts; the future is masked
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log-spaced buckets for max_exact <= distance < max_distance
    log_ratio = torch.log(distance.float().clamp(min=1) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (log_ratio * (num_buckets - max_exact)).long()
    large = large.clamp(max=num_buckets - 1)
    return bucket + torch.where(is_small, distance, large)


class RelativePositionBias(nn.Module):
    """T5's learned additive bias: (Tq, Tk) bucketed distances -> (1, H, Tq, Tk) score bias."""

    def __init__(
        self, n_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True
    ):
        super().__init__()
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional
        self.embedding = nn.Embedding(num_buckets, n_heads)

    def forward(self, t_query: int, t_key: int, start_pos: int = 0) -> torch.Tensor:
        device = self.embedding.weight.device
        q_pos = torch.arange(start_pos, start_pos + t_query, device=device)[:, None]  # (Tq, 1)
        k_pos = torch.arange(t_key, device=device)[None, :]  # (1, Tk)
        buckets = relative_position_bucket(
            k_pos - q_pos, self.bidirectional, self.num_buckets, self.max_distance
        )
        return self.embedding(buckets).permute(2, 0, 1)[None]  # (Tq, Tk, H) -> (1, H, Tq, Tk)
