"""Mamba's selective state-space mixers: Mamba-1 (`MambaMixer`) and Mamba-2's SSD (`Mamba2Mixer`).

Mamba-1: "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Gu & Dao, 2023,
arXiv:2312.00752). Mamba-2: "Transformers are SSMs: Generalized Models and Efficient Algorithms
Through Structured State Space Duality" (Dao & Gu, 2024, arXiv:2405.21060).

A state-space model keeps a state h (N numbers per channel) and reads the sequence one position at
a time: h_t = Ā_t h_{t-1} + B̄_t x_t, y_t = C_t h_t + D x_t. S4 made Ā, B̄, C fixed (a long
convolution); Mamba makes them depend on the input ("selective"): each token chooses, through its
step size dt_t, how much of the past to keep (large dt: reset and write, small dt: keep and skip).
Discretising the continuous A with step dt (zero-order hold for A, Euler for B, as the paper's code):

    Ā_t = exp(dt_t A)        B̄_t x_t = dt_t B_t x_t        (A < 0, so 0 < Ā_t < 1: a decay)

This is the elementwise linear recurrence of `layers/scan.py`, h_t = a_t h_{t-1} + b_t, for every
channel d and state index n at once; `scan=` chooses how to compute it (the loop, the chunked
cumsum closed form, or Hillis-Steele). A single decoding step is always the recurrence itself.

Mamba-2 restricts A to one scalar per head (A_t = a_t I). Then the map x -> y within a chunk is a
masked "attention" matrix (C_t . B_s) exp(sum_{s<k<=t} dt_k A): state space duality. The chunked SSD
algorithm computes this quadratic form inside chunks (matmuls) and passes the state between chunks
(a short recurrence); `mode="recurrent"` is the plain loop, and single tokens always use it.

Both mixers follow the token-mixer contract (`layers/mixer.py`): (B, T, d_model) -> (B, T, d_model),
a `RecurrentState` cache with the convolution window ("conv") and the SSM state ("ssm"), of constant
size. Parameter names follow the reference code (and `transformers`), so checkpoints map one to one.
Used by the Mamba language models (models/ssm/) and by the hybrids that interleave Mamba with
attention (Jamba, Zamba, Samba, Nemotron-H, MambaVision).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.scan import scan_cumsum, scan_hillis_steele, scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option

#: the forms of Mamba-1's recurrence (all from layers/scan.py)
SCANS = ("sequential", "cumsum", "hillis_steele")
#: the forms of Mamba-2's SSD
SSD_MODES = ("chunked", "recurrent")


def inverse_softplus(y: torch.Tensor) -> torch.Tensor:
    """x such that softplus(x) = y (for y > 0): x = y + log(1 - exp(-y))."""
    return y + torch.log(-torch.expm1(-y))


def sample_dt(n: int, dt_min: float, dt_max: float, floor: float = 1e-4) -> torch.Tensor:
    """n step sizes, log-uniform in [dt_min, dt_max] (Mamba, Sec. 3.6 and its reference code)."""
    log_dt = torch.rand(n) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    return torch.exp(log_dt).clamp(min=floor)


def causal_conv(
    x: torch.Tensor, conv: nn.Conv1d, window: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Depthwise causal convolution over time, continuing from the last d_conv - 1 inputs.

    x (B, T, C); window (B, C, d_conv - 1) or None (zeros: nothing read yet). Returns the output
    (B, T, C) and the new window (the last d_conv - 1 inputs, for the next call). Written as a sum
    over the few taps (each channel its own filter): as fast as F.conv1d for long inputs and much
    faster for the one-token steps of decoding."""
    width = conv.kernel_size[0] - 1
    x = x.transpose(1, 2)  # (B, C, T)
    if window is None:
        window = x.new_zeros(x.shape[0], x.shape[1], width)
    padded = torch.cat([window, x], dim=2)  # (B, C, width + T)
    T, weight = x.shape[2], conv.weight.squeeze(1)  # weight (C, d_conv)
    y = sum(weight[:, k, None] * padded[:, :, k : k + T] for k in range(width + 1))  # (B, C, T)
    if conv.bias is not None:
        y = y + conv.bias[:, None]
    return y.transpose(1, 2), padded[:, :, padded.shape[2] - width :]


def safe_chunk(steepest: float, dtype: torch.dtype, chunk_size: int) -> int:
    """The longest safe chunk (at most chunk_size) for the cumsum form of the scan.

    That form divides by A_t = a_1 ... a_t, which underflows once the decay summed over a chunk
    passes log(tiny) (about -87 in float32). Keep the chunk short enough that it stays within half
    of that (so b / A_t stays far from overflow too), whatever dt the data chose.
    steepest: the largest per-step decay -log a_t = dt_t |A| in the input."""
    budget = -math.log(torch.finfo(dtype).tiny) / 2  # 43.7 in float32, 354 in float64
    if steepest <= 0:
        return chunk_size
    return max(1, min(chunk_size, int(budget / steepest)))


def selective_scan(
    u: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    scan: str = "sequential",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba-1's selective SSM: h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t, y_t = C_t h_t + D u_t.

    u, dt (B, T, d_inner); A (d_inner, N); B, C (B, T, N); D (d_inner); h0 (B, d_inner, N) or None.
    Returns y (B, T, d_inner) and the last state (B, d_inner, N). `scan` picks the form of the
    recurrence from layers/scan.py; one position is always the recurrence itself."""
    # discretise: a = exp(dt A) (zero-order hold), b = dt B u (Euler), per channel and state index
    a = torch.exp(dt.unsqueeze(-1) * A)  # (B, T, d_inner, N)
    b = (dt * u).unsqueeze(-1) * B.unsqueeze(2)  # (B, T, d_inner, 1) * (B, T, 1, N)
    if scan == "sequential" or u.shape[1] == 1:
        h = scan_sequential(a, b, h0)  # (B, T, d_inner, N)
    elif scan == "cumsum":
        steepest = float(dt.detach().max() * -A.detach().min())
        h = scan_cumsum(a, b, h0, chunk_size=safe_chunk(steepest, a.dtype, chunk_size))
    else:
        h = scan_hillis_steele(a, b, h0)
    y = (h @ C.unsqueeze(-1)).squeeze(-1) + D * u  # C_t h_t: (B, T, d_inner)
    return y, h[:, -1]


class MambaMixer(nn.Module):
    """Mamba-1's selective SSM (the whole "Mamba block" of the paper's Fig. 3, without the norm).

        x (B, T, d_model) -> in_proj -> [u, z] (B, T, d_inner each)
        u -> causal depthwise conv (d_conv) -> SiLU -> x_proj -> [dt_low (dt_rank), B (N), C (N)]
        dt = softplus(dt_proj(dt_low))                    (B, T, d_inner): a step size per channel
        h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t          h: (B, d_inner, N), A = -exp(A_log) (d_inner, N)
        y_t = C_t h_t + D u_t;  y * SiLU(z) -> out_proj -> (B, T, d_model)

    d_model: width of the residual stream. d_state: N, state size per channel. d_conv: the
    convolution's kernel. expand: d_inner = expand * d_model. dt_rank: the low-rank bottleneck of dt
    (None: ceil(d_model / 16)). scan: "sequential" (the loop), "cumsum" (the chunked closed form) or
    "hillis_steele" (log-depth scan): the same numbers, different cost (benchmarks/selective_scan.py).
    chunk_size: the longest chunk the cumsum form uses (shortened further when the decay within a
    chunk would underflow, see `safe_chunk`). bias: biases in in_proj/out_proj; conv_bias: in the conv.
    dt_min, dt_max: the range of the initial step sizes (`init_weights`).
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        scan: str = "cumsum",
        chunk_size: int = 64,
        bias: bool = False,
        conv_bias: bool = True,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
    ):
        super().__init__()
        if scan not in SCANS:
            raise ValueError(f"scan must be one of {SCANS}, got {scan!r}")
        self.d_model, self.d_state, self.scan = d_model, d_state, scan
        self.d_inner = d_inner = expand * d_model
        self.dt_rank = dt_rank = dt_rank or math.ceil(d_model / 16)
        self.chunk_size, self.dt_min, self.dt_max = chunk_size, dt_min, dt_max
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        # depthwise: each channel its own d_conv-tap filter; padding is done by hand (causal, cached)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner, bias=conv_bias)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        self.A_log = nn.Parameter(torch.empty(d_inner, d_state))  # A = -exp(A_log) < 0
        self.D = nn.Parameter(torch.empty(d_inner))  # the skip connection y += D u
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """S4D-real A (A_n = -(n + 1)), D = 1, and dt_proj so that the initial dt is log-uniform in
        [dt_min, dt_max]: its bias is softplus^-1 of sampled step sizes, its weight U(+-dt_rank^-0.5)."""
        if self.A_log.is_meta:
            return
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32).expand(self.d_inner, -1)
        self.A_log.copy_(torch.log(A))
        self.D.fill_(1.0)
        bound = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -bound, bound)
        self.dt_proj.bias.copy_(inverse_softplus(sample_dt(self.d_inner, self.dt_min, self.dt_max)))

    def init_cache(self, batch: int) -> RecurrentState:
        """conv: the last d_conv - 1 inputs of the conv (B, d_inner, d_conv - 1); ssm: h (B, d_inner, N)."""
        return RecurrentState(self, batch, ("conv", "ssm"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model). With `cache`, x holds only the new positions."""
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, d_inner) each
        u, window = causal_conv(u, self.conv1d, None if cache is None else cache["conv"])
        u = F.silu(u)
        dt_low, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = F.softplus(self.dt_proj(dt_low))  # (B, T, d_inner)
        A = -torch.exp(self.A_log)  # (d_inner, N)
        h0 = None if cache is None else cache["ssm"]
        y, h_last = selective_scan(u, dt, A, B, C, self.D, h0=h0, scan=self.scan, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["ssm"] = window, h_last
            cache.length += x.shape[1]
        return self.out_proj(y * F.silu(z))


class GatedRMSNorm(nn.Module):
    """Mamba-2's output norm: RMSNorm(y * SiLU(z)) * weight, normalised over groups of channels
    (one group per B/C group, so the norm does not mix groups: tensor parallelism in the paper)."""

    def __init__(self, dim: int, group_size: int, eps: float = 1e-5):
        super().__init__()
        self.group_size, self.eps = group_size, eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        gated = y * F.silu(z)
        grouped = gated.unflatten(-1, (-1, self.group_size))  # (..., n_groups, group_size)
        normed = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.flatten(-2) * self.weight


def segment_sum(log_a: torch.Tensor) -> torch.Tensor:
    """(..., L) -> (..., L, L): out[t, s] = log_a[s+1] + ... + log_a[t] for s <= t, -inf above the
    diagonal, so exp(out) is the decay from position s to t (1 on the diagonal, 0 in the future).
    Summed directly (masked cumsum), not as a difference of cumsums, which would lose precision."""
    L = log_a.shape[-1]
    strictly_lower = torch.ones(L, L, dtype=torch.bool, device=log_a.device).tril(-1)
    terms = log_a.unsqueeze(-1).expand(*log_a.shape, L).masked_fill(~strictly_lower, 0)  # [k, s]
    sums = terms.cumsum(dim=-2)  # (..., L, L): sum over k <= t of terms[k, s]
    lower = torch.ones(L, L, dtype=torch.bool, device=log_a.device).tril()
    return sums.masked_fill(~lower, -torch.inf)


def ssd_chunked(
    x: torch.Tensor,
    log_a: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    h0: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mamba-2's SSD algorithm (Dao & Gu, 2024, Sec. 6 and Listing 1): h_t = a_t h_{t-1} + x_t B_t^T,
    y_t = h_t C_t, with one scalar decay a_t = exp(log_a_t) per head.

    x (b, T, H, P) (already scaled by dt); log_a (b, T, H); B, C (b, T, H, N); h0 (b, H, P, N).
    Returns y (b, T, H, P) and the final state (b, H, P, N). Four steps, per chunk of `chunk_size`:
    1. within a chunk, the quadratic (attention-like) form: y = (C B^T * decay mask) x;
    2. the state each chunk leaves behind: sum_s decay(s -> end) x_s B_s^T;
    3. a recurrence over chunks only (T / chunk_size steps) gives each chunk's incoming state;
    4. its contribution to each position of the chunk: decay(start -> t) C_t h_in.
    """
    batch, T = x.shape[:2]
    pad = -T % chunk_size  # zero inputs with decay 1 (log 0) change neither outputs nor the state
    x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
    log_a = F.pad(log_a, (0, 0, 0, pad))
    # into chunks: (b, c, l, ...) with c = number of chunks, l = position in the chunk
    x, B, C = (t.unflatten(1, (-1, chunk_size)) for t in (x, B, C))  # (b, c, l, H, P or N)
    log_a = log_a.unflatten(1, (-1, chunk_size)).permute(0, 3, 1, 2)  # (b, H, c, l)
    cum = log_a.cumsum(dim=-1)  # (b, H, c, l): log decay from the chunk's start to position l

    # 1. within chunks: y_t = sum_{s<=t} (C_t . B_s) decay(s -> t) x_s
    decay = torch.exp(segment_sum(log_a))  # (b, H, c, l, s)
    scores = torch.einsum("bclhn,bcshn->bhcls", C, B) * decay  # (b, H, c, l, s)
    y_within = torch.einsum("bhcls,bcshp->bclhp", scores, x)

    # 2. the state each chunk would end with, starting from zero
    decay_to_end = torch.exp(cum[..., -1:] - cum)  # (b, H, c, l)
    chunk_states = torch.einsum("bclhn,bhcl,bclhp->bchpn", B, decay_to_end, x)

    # 3. the recurrence over chunk boundaries: state entering chunk c (chunk 0 gets h0)
    if h0 is None:
        h0 = x.new_zeros(batch, x.shape[3], x.shape[4], B.shape[-1])
    states = torch.cat([h0.unsqueeze(1), chunk_states], dim=1)  # (b, c + 1, H, P, N)
    chunk_decay = torch.exp(segment_sum(F.pad(cum[..., -1], (1, 0))))  # (b, H, c + 1, c + 1)
    states = torch.einsum("bhzc,bchpn->bzhpn", chunk_decay, states)  # (b, c + 1, H, P, N)
    incoming, final = states[:, :-1], states[:, -1]

    # 4. the incoming state, decayed to each position and read out by C
    y_from_past = torch.einsum("bclhn,bchpn,bhcl->bclhp", C, incoming, torch.exp(cum))
    y = (y_within + y_from_past).flatten(1, 2)[:, :T]  # (b, T, H, P)
    return y, final


def ssd_recurrent(
    x: torch.Tensor, log_a: torch.Tensor, B: torch.Tensor, C: torch.Tensor, h0: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same map as `ssd_chunked`, one step at a time (the definition, and the decoding step)."""
    a = torch.exp(log_a)[..., None, None]  # (b, T, H, 1, 1): one decay per head
    b = x.unsqueeze(-1) * B.unsqueeze(-2)  # (b, T, H, P, N): x_t B_t^T
    h = scan_sequential(a, b, h0)  # (b, T, H, P, N)
    y = (h @ C.unsqueeze(-1)).squeeze(-1)  # (b, T, H, P): h_t C_t
    return y, h[:, -1]


class Mamba2Mixer(nn.Module):
    """Mamba-2's SSD layer (the paper's Fig. 6, "parallel Mamba block").

        x (B, T, d_model) -> in_proj -> [z (d_inner), xBC (d_inner + 2 G N), dt (H)]
        xBC -> causal depthwise conv -> SiLU -> [x (H heads of head_dim P), B (G, N), C (G, N)]
        dt = softplus(dt + dt_bias) (B, T, H);  A = -exp(A_log) (H): ONE scalar per head
        h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T        h: (B, H, P, N), heads share their group's B, C
        y_t = h_t C_t + D x_t;  GatedRMSNorm(y, z) -> out_proj -> (B, T, d_model)

    Compared with Mamba-1: B, C, dt come straight from in_proj (not from the conv output through
    x_proj), A is a scalar per head, and a norm sits before out_proj. d_state: N. head_dim: P
    (d_inner = expand * d_model must be a multiple). n_groups: G, heads per group share B and C (like
    grouped-query attention). chunk_size: the SSD chunk. mode: "chunked" (SSD) or "recurrent".
    """

    def __init__(
        self,
        d_model: int,
        *,
        d_state: int = 64,
        d_conv: int = 4,
        expand: int = 2,
        head_dim: int = 64,
        n_groups: int = 1,
        chunk_size: int = 64,
        mode: str = "chunked",
        bias: bool = False,
        conv_bias: bool = True,
        norm_eps: float = 1e-5,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
    ):
        super().__init__()
        if mode not in SSD_MODES:
            raise ValueError(f"mode must be one of {SSD_MODES}, got {mode!r}")
        d_inner = expand * d_model
        if d_inner % head_dim:
            raise ValueError(f"expand * d_model = {d_inner} must be a multiple of head_dim={head_dim}")
        n_heads = d_inner // head_dim
        if n_heads % n_groups:
            raise ValueError(f"the {n_heads} heads must split evenly into n_groups={n_groups}")
        self.d_model, self.d_inner, self.d_state = d_model, d_inner, d_state
        self.head_dim, self.n_heads, self.n_groups = head_dim, n_heads, n_groups
        self.chunk_size, self.mode, self.dt_min, self.dt_max = chunk_size, mode, dt_min, dt_max
        self.conv_dim = d_inner + 2 * n_groups * d_state  # x, B and C go through the conv together
        self.in_proj = nn.Linear(d_model, d_inner + self.conv_dim + n_heads, bias=bias)
        self.conv1d = nn.Conv1d(self.conv_dim, self.conv_dim, d_conv, groups=self.conv_dim, bias=conv_bias)
        self.dt_bias = nn.Parameter(torch.empty(n_heads))
        self.A_log = nn.Parameter(torch.empty(n_heads))
        self.D = nn.Parameter(torch.empty(n_heads))
        self.norm = GatedRMSNorm(d_inner, d_inner // n_groups, norm_eps)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """A_h = -h for head h = 1..H (the reference code draws them from U[1, 16]; this follows
        transformers), D = 1, dt_bias = softplus^-1 of log-uniform step sizes in [dt_min, dt_max]."""
        if self.A_log.is_meta:
            return
        self.A_log.copy_(torch.log(torch.arange(1, self.n_heads + 1, dtype=torch.float32)))
        self.D.fill_(1.0)
        self.dt_bias.copy_(inverse_softplus(sample_dt(self.n_heads, self.dt_min, self.dt_max)))

    def init_cache(self, batch: int) -> RecurrentState:
        """conv: (B, conv_dim, d_conv - 1); ssm: h (B, H, head_dim, N)."""
        return RecurrentState(self, batch, ("conv", "ssm"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model). With `cache`, x holds only the new positions."""
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        batch, T, _ = x.shape
        z, xBC, dt = self.in_proj(x).split([self.d_inner, self.conv_dim, self.n_heads], dim=-1)
        xBC, window = causal_conv(xBC, self.conv1d, None if cache is None else cache["conv"])
        xBC = F.silu(xBC)
        u, B, C = xBC.split(
            [self.d_inner, self.n_groups * self.d_state, self.n_groups * self.d_state], dim=-1
        )
        u = u.unflatten(-1, (self.n_heads, self.head_dim))  # (B, T, H, P)
        per_group = self.n_heads // self.n_groups
        # (B, T, G * N) -> (B, T, H, N): each head reads its group's B and C
        B, C = (
            t.unflatten(-1, (self.n_groups, self.d_state)).repeat_interleave(per_group, 2) for t in (B, C)
        )
        dt = F.softplus(dt + self.dt_bias)  # (B, T, H)
        log_a = dt * -torch.exp(self.A_log)  # (B, T, H): log of the per-head decay exp(dt A)
        x_dt = u * dt.unsqueeze(-1)  # (B, T, H, P): discretised input (Euler), dt x
        h0 = None if cache is None else cache["ssm"]
        if self.mode == "recurrent" or T == 1:
            y, h_last = ssd_recurrent(x_dt, log_a, B, C, h0)
        else:
            y, h_last = ssd_chunked(x_dt, log_a, B, C, self.chunk_size, h0)
        y = y + self.D.unsqueeze(-1) * u  # (B, T, H, P)
        if cache is not None:
            cache["conv"], cache["ssm"] = window, h_last
            cache.length += T
        y = self.norm(y.flatten(2), z)  # (B, T, d_inner)
        return self.out_proj(y)


# ------------------------------------------------------------------ the Mamba language models
@dataclass(kw_only=True)
class MambaLMConfig:
    """Options of a Mamba-1 language model (the models in models/ssm/ subclass this with their own
    default `scan`). Defaults: a small model."""

    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 16  # N: state size per channel
    d_conv: int = option(4, min=1)  # kernel of the causal depthwise conv
    expand: int = option(2, min=1)  # d_inner = expand * d_model
    dt_rank: int | None = option(None, min=1)  # None: ceil(d_model / 16)
    scan: str = option("sequential", choices=SCANS)
    chunk_size: int = option(64, min=1)  # longest chunk of the cumsum form
    bias: bool = False  # biases in in_proj / out_proj
    conv_bias: bool = True
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    dt_min: float = option(0.001, gt=0.0)
    dt_max: float = option(0.1, gt=0.0)


class MambaLM(CausalLM):
    """tokens (B, T) -> logits (B, T, vocab_size): embedding, n_layers x [x + MambaMixer(RMSNorm(x))],
    final norm, tied head. Mamba has no MLP: the mixer's gated expansion plays its part."""

    def __init__(self, config: MambaLMConfig):
        c = config
        blocks = [
            Block(
                c.d_model,
                MambaMixer(
                    c.d_model,
                    d_state=c.d_state,
                    d_conv=c.d_conv,
                    expand=c.expand,
                    dt_rank=c.dt_rank,
                    scan=c.scan,
                    chunk_size=c.chunk_size,
                    bias=c.bias,
                    conv_bias=c.conv_bias,
                    dt_min=c.dt_min,
                    dt_max=c.dt_max,
                ),
                None,
                norm=c.norm,
                norm_eps=c.norm_eps,
            )
            for _ in range(c.n_layers)
        ]
        super().__init__(config, blocks)
