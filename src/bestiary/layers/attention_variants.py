"""Softmax attention with another normaliser: the score -> weight step of the attention zoo.

Attention computes scores s_ij = <q_i, k_j> / sqrt(d) and turns each query's row of scores into
weights over the keys it may see. Softmax is one choice. Three papers replace it, each to fix one
of its habits:

- **Scalable-Softmax (SSMax)**, "Scalable-Softmax Is Superior for Attention" (Nakanishi, 2025,
  arXiv:2501.19399): softmax(s_h * log(n) * z) over the n keys a query sees. Plain softmax flattens
  as n grows (the largest weight shrinks like 1/n); multiplying the logits by log(n) keeps the
  peak at a fixed height whatever the context length. s_h is a learned scale per head.
- **Softpick**, "Softpick: No Attention Sink, No Massive Activations with Rectified Softmax"
  (Zuhri et al., 2025, arXiv:2504.20966): relu(e^z_i - 1) / (sum_j |e^z_j - 1| + eps). A score
  <= 0 gets exactly zero weight and the weights need not sum to one, so a head can attend to
  nothing instead of dumping its weight on a "sink" token.
- **Sigmoid attention**, "Theory, Analysis, and Best Practices for Sigmoid Self-Attention"
  (Ramapuram et al., 2024, arXiv:2409.04431): sigmoid(z + b) element by element, b = -log(n)
  for training length n so the initial row sums stay near 1. No normalisation across keys.

Each normaliser is a module `(scores (B, H, Tq, Tk), visible (Tq, Tk) bool) -> weights`, and
`NormalisedAttention` is `MultiHeadAttention` (its projections, RoPE, grouped heads and KV cache)
with the softmax step swapped for one of them. Every normaliser works row by row on the keys a
query may see, so decoding with the cache gives the full forward's outputs.

Also here, because two models of the attention zoo share each of them:
- `KVExtrasCache`: a KVCache that keeps more per-position tensors (FoX's cumulative forget gates,
  MTA's past queries, Mega's and MEGALODON's keys and values of different widths, NHA's gates);
- `DampedEMA`: Mega's multi-dimensional damped EMA and MEGALODON's complex one (CEMA);
- `ResidualLinearAttention`: RLA and RDN, linear attention / the delta rule with a second state
  that fits the first one's residual errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, prenorm_blocks
from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.masks import causal_mask
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.ssm_kernels import fft_causal_conv
from bestiary.layers.state import RecurrentState

__all__ = [
    "DampedEMA",
    "ema_kernel",
    "ema_recurrent",
    "KVExtrasCache",
    "normalised_attention_blocks",
    "NormalisedAttention",
    "ResidualLinearAttention",
    "ScalableSoftmax",
    "sigmoid_weights",
    "SigmoidWeights",
    "Softmax",
    "Softpick",
    "softpick",
    "ssmax",
]


def ssmax(scores: torch.Tensor, visible: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Scalable-Softmax: softmax(scale_h * log(n_i) * scores) over the n_i keys query i sees.

    scores (B, H, Tq, Tk), visible (Tq, Tk) bool, scale (H,) -> weights (B, H, Tq, Tk)."""
    n_visible = visible.sum(dim=-1).to(scores.dtype)  # (Tq,): keys seen by each query
    logit_scale = scale.to(scores.dtype)[:, None, None] * n_visible.log()[:, None]  # (H, Tq, 1)
    scores = (scores * logit_scale).masked_fill(~visible, float("-inf"))
    return scores.softmax(dim=-1)


def softpick(scores: torch.Tensor, visible: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """relu(e^z - 1) / (sum_j |e^z_j - 1| + eps) over the visible keys (hidden keys weigh 0).

    Computed as relu(e^(z-m) - e^-m) / (sum |e^(z_j-m) - e^-m| + eps e^-m), numerator and denominator
    multiplied by e^-m with m = max(0, max_j z_j): the same number, but no exp overflows."""
    scores = scores.masked_fill(~visible, float("-inf"))  # e^-inf = 0: no gradient reaches hidden keys
    shift = scores.amax(dim=-1, keepdim=True).clamp_min(0).detach()  # (B, H, Tq, 1)
    offset = torch.exp(-shift)  # e^-m, the "- 1" after the shift
    centred = torch.where(visible, torch.exp(scores - shift) - offset, 0.0)  # (e^z - 1) e^-m
    return centred.relu() / (centred.abs().sum(dim=-1, keepdim=True) + eps * offset)


def sigmoid_weights(scores: torch.Tensor, visible: torch.Tensor, bias: float) -> torch.Tensor:
    """sigmoid(scores + bias) for visible keys, 0 for hidden ones: no sum over keys at all."""
    return torch.sigmoid(scores + bias).masked_fill(~visible, 0.0)


class Softmax(nn.Module):
    """The usual normaliser, for comparison: softmax over the visible keys."""

    def forward(self, scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)


class ScalableSoftmax(nn.Module):
    """SSMax with a learned scale s per head, started at `init_scale` (the paper's s ~ 0.43 makes
    s * log(n) about 1 at n ~ 10, so short contexts start near plain softmax)."""

    def __init__(self, n_heads: int, init_scale: float = 0.43):
        super().__init__()
        self.init_scale = init_scale
        self.scale = nn.Parameter(torch.full((n_heads,), init_scale))

    def init_weights(self) -> None:
        nn.init.constant_(self.scale, self.init_scale)

    def forward(self, scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return ssmax(scores, visible, self.scale)


class Softpick(nn.Module):
    """The rectified, not-sum-to-one softmax of `softpick`."""

    def __init__(self, eps: float = 1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return softpick(scores, visible, self.eps)


class SigmoidWeights(nn.Module):
    """sigmoid(score - log(n)) with n fixed (the training length): a constant bias, so the weight
    of a key does not depend on how many others a query sees, and decoding matches training."""

    def __init__(self, seq_len: int):
        super().__init__()
        self.bias = -math.log(seq_len)

    def forward(self, scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        return sigmoid_weights(scores, visible, self.bias)


class NormalisedAttention(MultiHeadAttention):
    """Causal multi-head attention with `normaliser(scores, visible) -> weights` in place of softmax.

    Everything else is `MultiHeadAttention`'s: q/k/v projections, RoPE, grouped key/value heads and
    the KVCache. Only the step from scores to the (B, T, d_model) output is rewritten, written out
    (no fused kernel knows these normalisers). Padding masks are not supported: every position is a
    token of the sequence.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        normaliser: nn.Module | Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        **kwargs: object,
    ):
        super().__init__(d_model, n_heads, causal=True, **kwargs)  # type: ignore[arg-type]
        self.normaliser = normaliser

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, start: int
    ) -> torch.Tensor:
        if mask is not None:
            raise ValueError(f"{type(self).__name__} takes no padding mask")
        B, _, T, _ = q.shape
        group = self.n_heads // self.n_kv_heads
        k = k.repeat_interleave(group, dim=1)  # (B, H, Tk, Dh): each query head reads its group's k/v
        v = v.repeat_interleave(group, dim=1)
        scale = 1.0 / math.sqrt(self.head_dim) if self.scale is None else self.scale
        scores = q @ k.transpose(-2, -1) * scale  # (B, H, T, Tk)
        visible = causal_mask(T, k.shape[-2], q.device)  # (T, Tk): the cached keys and those up to i
        weights = self.normaliser(scores, visible)  # (B, H, T, Tk)
        out = weights @ v  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out)


def normalised_attention_blocks(config: object, make_normaliser: Callable[[], nn.Module]) -> list[Block]:
    """config.n_layers Llama-style blocks (RoPE, RMSNorm, SwiGLU) of `NormalisedAttention`, each with
    a fresh normaliser: the language models of SSMax, Softpick and sigmoid attention.

    config needs d_model, n_layers, n_heads, n_kv_heads, head_dim, d_ff, rope_theta, norm_eps."""
    c: Any = config
    rope = RotaryEmbedding(c.head_dim or c.d_model // c.n_heads, c.rope_theta)  # no parameters: shared
    return prenorm_blocks(
        c,
        lambda _: NormalisedAttention(
            c.d_model,
            c.n_heads,
            make_normaliser(),
            n_kv_heads=c.n_kv_heads,
            head_dim=c.head_dim,
            bias=False,
            rope=rope,
        ),
    )


class KVExtrasCache(KVCache):
    """A KVCache that keeps more per-position tensors beside the keys and values, each (B, ..., T, C)
    with positions on dim -2: FoX's cumulative log forget gates, MTA's past queries.

    `update(k, v)` first, then `update_extra(name, t)` for each extra; `crop` cuts them all. A mixer
    with no keys at all (TNN keeps only its past inputs) uses extras alone: `length` then counts
    the positions of the first extra."""

    def __init__(self, names: tuple[str, ...]):
        super().__init__()
        self.extras: dict[str, torch.Tensor | None] = {name: None for name in names}

    @property
    def length(self) -> int:
        if self.keys is not None:
            return self.keys.shape[-2]
        first = next(iter(self.extras.values()), None)
        return 0 if first is None else first.shape[-2]

    def update_extra(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Append t (B, ..., T_new, C) to the extra `name`; return all positions so far."""
        old = self.extras[name]
        if old is not None:
            t = torch.cat([old, t], dim=-2)  # (B, ..., T_old + T_new, C)
        self.extras[name] = t
        return t

    def crop(self, length: int) -> None:
        super().crop(length)
        self.extras = {name: None if t is None else t[..., :length, :] for name, t in self.extras.items()}

    def nbytes(self) -> int:
        extras = sum(t.numel() * t.element_size() for t in self.extras.values() if t is not None)
        return super().nbytes() + extras


# ------------------------------------------------------ damped exponential moving averages (Mega, MEGALODON)
def ema_powers(decay: torch.Tensor, exponents: torch.Tensor) -> torch.Tensor:
    """decay^j for each j in `exponents` (n,): (n, *decay.shape). A complex decay r e^(iθ) is raised
    as r^j e^(ijθ), exact for integer j (torch's complex pow goes through a logarithm)."""
    j = exponents.to(decay.real.dtype).view(-1, *([1] * decay.dim()))
    if decay.is_complex():
        return torch.polar(decay.abs()[None] ** j, decay.angle()[None] * j)
    return decay[None] ** j


def ema_recurrent(
    x: torch.Tensor,
    decay: torch.Tensor,
    gain: torch.Tensor,
    eta: torch.Tensor,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """u_t = gain ⊙ x_t + decay ⊙ u_{t-1}, y_t = Re(sum_n eta ⊙ u_t), step by step.

    x (B, T, D) real; decay, gain (D, N), real or complex; eta (D, N) real; state u_0 (B, D, N) or None
    (zeros). Returns y (B, T, D) and the last state (B, D, N)."""
    u = torch.zeros(x.shape[0], *decay.shape, dtype=decay.dtype, device=x.device) if state is None else state
    outputs = []
    for t in range(x.shape[1]):
        u = gain * x[:, t, :, None] + decay * u  # (B, D, N): N damped averages per channel
        outputs.append((u * eta).sum(dim=-1).real)  # (B, D)
    return torch.stack(outputs, dim=1), u


def ema_kernel(decay: torch.Tensor, gain: torch.Tensor, eta: torch.Tensor, length: int) -> torch.Tensor:
    """k_j = Re(sum_n eta_n gain_n decay_n^j) for j = 0 .. length-1: (length, D)."""
    powers = ema_powers(decay, torch.arange(length, device=decay.device))  # (T, D, N)
    return (powers * gain * eta).sum(dim=-1).real


class DampedEMA(nn.Module):
    """Mega's multi-dimensional damped EMA, or with `rotate=True` MEGALODON's complex one (CEMA).

    Each channel is expanded to N dims by β, averaged with u_t = α β x_t + (1 - α δ) u_{t-1}, and read
    out by η; α, δ = sigmoid of learned logits. CEMA multiplies both terms by e^(iθ_n), θ_n =
    2π n / N * ω (ω in (0, 1), learned per channel): each dim becomes a damped oscillation, and the
    output is the real part. `mode`: "fft" (a causal convolution with the EMA's kernel) or "recurrent".
    forward(x, state) -> (EMA(x) + ω_skip ⊙ x, last state)."""

    def __init__(self, d_model: int, n_dims: int, mode: str = "fft", rotate: bool = False):
        super().__init__()
        if mode not in ("fft", "recurrent"):
            raise ValueError(f"mode must be 'fft' or 'recurrent', got {mode!r}")
        self.mode, self.rotate = mode, rotate
        self.alpha_logit = nn.Parameter(torch.zeros(d_model, n_dims))  # α = sigmoid: the input weight
        self.delta_logit = nn.Parameter(torch.zeros(d_model, n_dims))  # δ = sigmoid: the damping
        self.beta = nn.Parameter(torch.zeros(d_model, n_dims))  # expansion of each channel to N dims
        self.eta = nn.Parameter(torch.zeros(d_model, n_dims))  # projection back to one number
        self.omega = nn.Parameter(torch.zeros(d_model))  # a skip term, ω ⊙ x
        if rotate:
            self.angle_logit = nn.Parameter(torch.zeros(d_model, 1))  # the frequency ω of CEMA
        self.init_weights()

    def init_weights(self) -> None:
        nn.init.normal_(self.alpha_logit, std=0.2)
        nn.init.normal_(self.delta_logit, std=0.2)
        signs = torch.ones(self.beta.shape[-1])
        signs[1::2] = -1  # Mega's β: alternating ±1 plus noise, so the N averages differ
        with torch.no_grad():
            self.beta.copy_(signs + 0.02 * torch.randn_like(self.beta))
        nn.init.normal_(self.eta, std=1.0)
        nn.init.normal_(self.omega, std=1.0)
        if self.rotate:
            nn.init.normal_(self.angle_logit, std=1.0)

    def coefficients(self) -> tuple[torch.Tensor, torch.Tensor]:
        """decay = (1 - α δ) [e^(iθ)] and gain = α β [e^(iθ)], both (D, N)."""
        alpha, delta = torch.sigmoid(self.alpha_logit), torch.sigmoid(self.delta_logit)
        decay, gain = 1 - alpha * delta, alpha * self.beta
        if self.rotate:
            n_dims = self.beta.shape[-1]
            steps = torch.arange(1, n_dims + 1, device=decay.device, dtype=decay.dtype) / n_dims
            theta = 2 * math.pi * steps * torch.sigmoid(self.angle_logit)  # (D, N)
            decay, gain = torch.polar(decay, theta), torch.polar(torch.ones_like(theta), theta) * gain
        return decay, gain

    def forward(
        self, x: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> EMA(x) + ω ⊙ x (B, T, D), and the EMA's last state (B, D, N)."""
        decay, gain = self.coefficients()
        if self.mode == "recurrent" or state is not None:  # continuing from a state: step by step
            y, last = ema_recurrent(x, decay, gain, self.eta, state)
        else:
            T = x.shape[1]
            y = fft_causal_conv(
                x, ema_kernel(decay, gain, self.eta, T).T
            )  # (B, T, D): the EMA as a convolution
            # the last state is the same sum as the convolution, without η: sum_j decay^(T-1-j) gain x_j
            powers = ema_powers(decay, torch.arange(T - 1, -1, -1, device=x.device))  # (T, D, N)
            last = torch.einsum("tdn,btd->bdn", powers * gain, x.to(powers.dtype))
        return y + self.omega * x, last


# ------------------------------------------------------------------ residual linear attention (RLA, RDN)
def residual_linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    *,
    delta: bool,
    clip: float,
    states: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Token by token. q, k (B, H, T, Dk), v (B, H, T, Dv), alpha/beta/gamma (B, H, T) in (0, 1).

    base:      S_t = α_t S_{t-1} [(I - β_t k_t k_tᵀ) if delta] + β_t v_t k_tᵀ
    residual:  r_t = clip(v_t - α_t S_{t-1} k_t, ±clip)   the base's error on this key, before writing it
    auxiliary: R_t = α_t R_{t-1} [(I - γ_t k_t k_tᵀ) if delta] + γ_t r_t k_tᵀ
    output:    o_t = α_t S_{t-1} q_t + R_t q_t   the history predicts, the residual memory corrects
    Returns o (B, H, T, Dv) and the last (S, R), each (B, H, Dv, Dk)."""
    B, H, T, d_k = k.shape
    if states is None:
        zeros = v.new_zeros(B, H, v.shape[-1], d_k)
        states = (zeros, zeros)
    base, aux = states
    outputs = []
    for t in range(T):
        k_t, v_t, q_t = k[:, :, t], v[:, :, t], q[:, :, t]  # (B, H, D)
        a, b, g = (x[:, :, t, None, None] for x in (alpha, beta, gamma))  # (B, H, 1, 1)
        base, aux = a * base, a * aux  # decay both memories
        prediction = (base @ q_t[..., None])[..., 0]  # (B, H, Dv): the history's answer, read before writing
        error = v_t - (base @ k_t[..., None])[..., 0]  # (B, H, Dv): what the base gets wrong for k_t
        residual = error.clamp(-clip, clip)
        if delta:  # the delta rule writes the error, replacing what the key held (-S k kᵀ term)
            base = base + b * (error[..., None] * k_t[..., None, :])
            aux = aux + g * ((residual - (aux @ k_t[..., None])[..., 0])[..., None] * k_t[..., None, :])
        else:
            base = base + b * v_t[..., None] * k_t[..., None, :]  # (B, H, Dv, Dk)
            aux = aux + g * residual[..., None] * k_t[..., None, :]
        outputs.append(prediction + (aux @ q_t[..., None])[..., 0])  # (B, H, Dv)
    return torch.stack(outputs, dim=2), (base, aux)


def residual_linear_attention_parallel(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    *,
    clip: float,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """RLA (delta=False) for a whole sequence from zero states, as attention-like matrices.

    With the decay from j to t, D_tj = prod_{j<s<=t} α_s (j <= t), the base's prediction for k_t is
    sum_{j<t} D_tj β_j (k_j·k_t) v_j, which gives every residual r_t at once; then
    o_t = sum_{j<t} D_tj β_j v_j (k_j·q_t) + sum_{j<=t} D_tj γ_j r_j (k_j·q_t): the base memory up to
    t - 1, the residual memory up to t. Same outputs and last states."""
    log_decay = torch.log(alpha).cumsum(dim=-1)  # (B, H, T): log prod_{s<=t} α_s
    T = q.shape[-2]
    decay = torch.exp(log_decay[..., :, None] - log_decay[..., None, :])  # (B, H, T, T): D_tj (for j <= t)
    causal = torch.ones(T, T, dtype=torch.bool, device=q.device).tril()
    decay = decay.masked_fill(~causal, 0.0)
    strictly_past = decay.masked_fill(torch.eye(T, dtype=torch.bool, device=q.device), 0.0)
    prediction = (strictly_past * (k @ k.transpose(-2, -1))) @ (beta[..., None] * v)  # (B, H, T, Dv)
    residual = (v - prediction).clamp(-clip, clip)
    scores = q @ k.transpose(-2, -1)  # (B, H, T, T)
    out = (strictly_past * scores) @ (beta[..., None] * v) + (decay * scores) @ (gamma[..., None] * residual)
    to_end = decay[..., -1, :, None]  # (B, H, T, 1): D_Tj, the decay from each token to the end
    base = ((to_end * beta[..., None] * v).transpose(-2, -1)) @ k  # (B, H, Dv, Dk)
    aux = ((to_end * gamma[..., None] * residual).transpose(-2, -1)) @ k
    return out, (base, aux)


class ResidualLinearAttention(nn.Module):
    """Causal multi-head RLA (`delta=False`) or RDN (`delta=True`), x (B, T, d_model) -> (B, T, d_model).

    Keys and queries are L2-normalised per head (the delta rule needs |k| = 1); α (decay), β (base
    write strength) and γ (residual write strength) are per-head sigmoid gates of the input. `mode`:
    "parallel" (RLA only) or "recurrent"; single tokens and continuations from a cache use the
    recurrence. The cache is a RecurrentState with the two fixed-size memories."""

    def __init__(
        self, d_model: int, n_heads: int, *, delta: bool, residual_clip: float = 1.0, mode: str = "recurrent"
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if mode not in ("parallel", "recurrent") or (delta and mode == "parallel"):
            raise ValueError(f"mode must be 'recurrent' or (without the delta rule) 'parallel', got {mode!r}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.delta, self.residual_clip, self.mode = delta, residual_clip, mode
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gates_proj = nn.Linear(d_model, 3 * n_heads)  # α, β, γ per head
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_weights(self) -> None:
        """Decay gates start near 1 (long memory): bias 3 gives α = sigmoid(3) ~ 0.95."""
        with torch.no_grad():
            self.gates_proj.bias.zero_()
            self.gates_proj.bias[: self.n_heads] = 3.0

    def init_cache(self, batch: int, **_: object) -> RecurrentState:
        return RecurrentState(self, batch, ("base", "residual"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v = (
            t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
            for t in self.qkv_proj(x).chunk(3, dim=-1)
        )
        q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
        alpha, beta, gamma = (
            torch.sigmoid(self.gates_proj(x)).transpose(1, 2).chunk(3, dim=1)
        )  # (B, H, T) each
        states = None
        if cache is not None and cache["base"] is not None:
            states = (cache["base"], cache["residual"])
        if self.mode == "parallel" and states is None and T > 1:
            out, (base, aux) = residual_linear_attention_parallel(
                q, k, v, alpha, beta, gamma, clip=self.residual_clip
            )
        else:
            out, (base, aux) = residual_linear_attention_recurrent(
                q, k, v, alpha, beta, gamma, delta=self.delta, clip=self.residual_clip, states=states
            )
        if cache is not None:
            cache["base"], cache["residual"] = base, aux
            cache.length += T
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))  # (B, T, d_model)
