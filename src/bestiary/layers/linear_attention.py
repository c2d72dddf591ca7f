"""Linear attention with decay: the machinery shared by the Linear Transformer, RetNet, GLA,
Lightning Attention, Performer, Based and HGRN-2.

Softmax attention mixes values with weights softmax(q_t . k_s); it has no state smaller than every
past key and value. Replace exp(q . k) by a kernel phi(q) . phi(k) and the sum over the past
factors ("Transformers are RNNs", Katharopoulos et al., 2020, arXiv:2006.16236):

    o_t = sum_{s<=t} (q_t . k_s) v_s = q_t^T S_t,        S_t = sum_{s<=t} k_s v_s^T   (d_k x d_v)

so a fixed-size matrix state S replaces the KV cache. Add a decay a_t in (0, 1] that fades the
old associations (RetNet, GLA, Lightning Attention, HGRN-2 all do):

    S_t = diag(a_t) S_{t-1} + k_t v_t^T,     o_t = q_t^T S_t

    decay kind                 log_decay shape    who
    none                       None               Linear Transformer, Performer, Based
    fixed per-head scalar      (H,)               RetNet, Lightning Attention
    data-dependent scalar      (B, H, T)          (Mamba-2-like gates)
    data-dependent per channel (B, H, T, d_k)     GLA, HGRN-2

With G_t = sum_{r<=t} log a_r, the weight of s in o_t is exp(G_t - G_s) (per key channel), and the
same outputs come out of three forms:

    recurrent   the loop above: O(T d_k d_v) work, T dependent steps (what decoding does)
    parallel    o = (masked, decayed scores) @ v: like softmax attention, O(T^2) work, no loop
    chunkwise   split T into chunks of C: inside a chunk the parallel form, between chunks the
                state S carried forward (GLA, Lightning Attention-2, RetNet's chunkwise form):
                O(T C d + T d_k d_v) work and T / C sequential steps

The parallel form here IS the chunkwise form with a single chunk, so the two share their code;
the recurrent loop is written independently (the tests check all three agree, gradients too).

Numerics: every exponential we form is exp(G_t - G_s) with s <= t, or exp(G_end - G_s), or
exp(G_t - G_start): all <= 1, never the exp(+G) / exp(-G) factorisation, which overflows in long
chunks. For per-channel decay the intra-chunk weights exp(G_t,c - G_s,c) are formed explicitly
as a (C, C, d_k) tensor (simple and stable; FLA's kernels split chunks into sub-chunks to use
matmuls instead).

Also here: the feature maps phi (elu + 1, ReLU, Performer's FAVOR+ positive random features,
Based's 2nd-order Taylor map), the normaliser of kernel attention, and HGRN's per-layer lower
bounds on forget gates.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import check_shape
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
from bestiary.layers.state import RecurrentState

MODES = ("parallel", "chunkwise", "recurrent")


# ------------------------------------------------------------------------------- feature maps
def elu_plus_one(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1 > 0 (Katharopoulos et al., 2020): positive, so the normaliser is too."""
    return F.elu(x) + 1.0


def relu_features(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = max(x, 0) (used with a normaliser by several linear-attention ablations)."""
    return F.relu(x)


def taylor_features(x: torch.Tensor) -> torch.Tensor:
    """Based's feature map (Arora et al., 2024): phi(q) . phi(k) = 1 + q.k + (q.k)^2 / 2, the 2nd
    order Taylor expansion of exp(q.k). x (..., d) -> (..., 1 + d + d^2).

    The quadratic part is the flattened outer product x x^T / sqrt(2), because
    <vec(q q^T), vec(k k^T)> = (q.k)^2. 1 + y + y^2/2 = ((y + 1)^2 + 1) / 2 > 0 for every y, so
    the normaliser is positive."""
    second = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(-2) / math.sqrt(2.0)  # (..., d * d)
    return torch.cat([torch.ones_like(x[..., :1]), x, second], dim=-1)


def orthogonal_random_features(
    n_features: int, dim: int, *, generator: torch.Generator | None = None, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """Performer's random projection (n_features, dim): rows w_i ~ N(0, I), made orthogonal within
    each block of `dim` rows (QR of a Gaussian matrix), then rescaled to the lengths of independent
    Gaussian vectors so each row is still marginally N(0, I) (Choromanski et al., 2020, sec. 2.4).
    Orthogonal rows lower the estimator's variance; the marginals keep it unbiased."""
    blocks = []
    for start in range(0, n_features, dim):
        gaussian = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)  # columns orthonormal
        # QR's sign convention is not random: flipping columns by sign(diag(R)) makes q uniformly
        # distributed over rotations (Haar), so each row is a uniformly random direction (without
        # it the estimate is biased)
        q = q * torch.sign(torch.diagonal(r))
        blocks.append(q.T[: n_features - start])  # (rows, dim)
    directions = torch.cat(blocks)  # (n_features, dim) unit rows
    lengths = torch.randn(n_features, dim, generator=generator, dtype=torch.float64).norm(dim=-1)  # chi(dim)
    return (directions * lengths[:, None]).to(dtype or torch.get_default_dtype())


def favor_features(x: torch.Tensor, projection: torch.Tensor, *, is_query: bool = False) -> torch.Tensor:
    """FAVOR+ positive random features: phi(x)_i = exp(w_i . x - |x|^2 / 2) / sqrt(m).

    E_w[phi(q) . phi(k)] = exp(q . k) exactly (Choromanski et al., 2020, Lemma 1): an unbiased
    estimate of the softmax kernel made of positive numbers, so the normaliser never nears zero.
    x (..., d), projection (m, d) -> (..., m). Scale q and k by d^(-1/4) first to get
    exp(q . k / sqrt(d)). For queries a per-position constant exp(-max) is taken out for
    stability: it cancels between numerator and normaliser (it cannot for keys, which are summed)."""
    logits = x @ projection.T - 0.5 * x.pow(2).sum(dim=-1, keepdim=True)  # (..., m)
    if is_query:
        logits = logits - logits.amax(dim=-1, keepdim=True).detach()
    return torch.exp(logits) / math.sqrt(projection.shape[0])


def forget_gate_lower_bounds(logits: torch.Tensor) -> torch.Tensor:
    """HGRN's per-layer lower bounds on the forget gate (Qin et al., 2023, sec. 3.2): from learned
    logits (n_layers, d), gamma = cumsum(softmax(logits over layers)) - its first row, so the first
    layer has bound 0 (it may forget at once: local patterns) and the bound rises monotonically
    with depth towards 1 (upper layers keep long-term memory). -> (n_layers, d) in [0, 1)."""
    gamma = torch.cumsum(torch.softmax(logits, dim=0), dim=0)  # (n_layers, d)
    return gamma - gamma[:1]


def bounded_forget_gate(logits: torch.Tensor, lower_bound: torch.Tensor) -> torch.Tensor:
    """HGRN's forget gate f = lb + (1 - lb) sigmoid(logits), in [lb, 1): the layer may not forget
    faster than its lower bound allows."""
    return lower_bound + (1 - lower_bound) * torch.sigmoid(logits)


class ForgetGateLowerBounds(nn.Module):
    """The learned logits of `forget_gate_lower_bounds`, (n_layers, dim), zeros at first (bounds
    0, 1/L, 2/L, ...). One module shared by every layer of a model (like tied embeddings): each
    layer asks for its own row."""

    def __init__(self, n_layers: int, dim: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers, dim))

    def forward(self, layer: int) -> torch.Tensor:
        return forget_gate_lower_bounds(self.logits)[layer]  # (dim,)


# ------------------------------------------------------------------ gated linear attention
def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_decay: torch.Tensor | None) -> None:
    if q.dim() != 4 or q.shape != k.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(
            f"q, k must be (B, H, T, d_k) and v (B, H, T, d_v); got {tuple(q.shape)}, {tuple(k.shape)}, "
            f"{tuple(v.shape)}"
        )
    if log_decay is None:
        return
    B, H, T, Dk = q.shape
    allowed = [(H,), (B, H, T), (B, H, T, Dk)]
    if tuple(log_decay.shape) not in allowed:
        raise ValueError(
            f"log_decay must have a shape in {allowed} (see the table above), got {tuple(log_decay.shape)}"
        )


def _full_log_decay(log_decay: torch.Tensor | None, q: torch.Tensor) -> torch.Tensor:
    """None -> zeros (B, H, T); (H,) -> (B, H, T); data-dependent shapes as they are."""
    B, H, T, _ = q.shape
    if log_decay is None:
        return q.new_zeros(B, H, T)
    if log_decay.dim() == 1:
        return log_decay.to(q.dtype)[None, :, None].expand(B, H, T)
    return log_decay


def _per_key(g: torch.Tensor) -> torch.Tensor:
    """A scalar decay (B, H, ...) gets a trailing axis so it broadcasts over key channels."""
    return g.unsqueeze(-1) if g.dim() == 3 else g


def future_mask(length: int, device: torch.device | None = None) -> torch.Tensor:
    """(L, L) bool, True where s > t: the positions a causal query must not see."""
    return torch.ones(length, length, dtype=torch.bool, device=device).triu(1)


def decayed_scores(
    q: torch.Tensor, k: torch.Tensor, g: torch.Tensor, future: torch.Tensor | None = None
) -> torch.Tensor:
    """The causal, decayed score matrix of one chunk: A[t, s] = sum_c q_tc k_sc exp(g_tc - g_sc)
    for s <= t, else 0. q, k (B, H, L, d_k); g: cumulative log decay within the chunk, (B, H, L)
    (scalar) or (B, H, L, d_k) (per channel); future: `future_mask(L)` if already made.
    -> (B, H, L, L)."""
    L = q.shape[2]
    future = future_mask(L, q.device) if future is None else future[:L, :L]
    if g.dim() == 3:  # scalar decay: the decay matrix multiplies q k^T
        diff = g.unsqueeze(-1) - g.unsqueeze(-2)  # (B, H, L, L): g_t - g_s
        decay = diff.masked_fill(future, float("-inf")).exp()  # masked before exp: never exp(+large)
        return (q @ k.transpose(-1, -2)) * decay
    diff = g.unsqueeze(3) - g.unsqueeze(2)  # (B, H, L, L, d_k): g_tc - g_sc
    decay = diff.masked_fill(future[:, :, None], float("-inf")).exp()
    return torch.einsum("bhtc,bhsc,bhtsc->bhts", q, k, decay)


def _chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor,
    state: torch.Tensor,
    future: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One chunk of L positions starting from `state` (B, H, d_k, d_v).
    -> (intra, inter, new state): the chunk's own contribution, the contribution of the past."""
    g = torch.cumsum(log_decay, dim=2)  # (B, H, L[, d_k]): decay from the chunk start to t
    intra = decayed_scores(q, k, g, future) @ v  # (B, H, L, d_v)
    inter = (q * _per_key(g).exp()) @ state  # (B, H, L, d_v): the past, decayed up to t
    g_end = _per_key(g[:, :, -1:]).transpose(-1, -2)  # (B, H, d_k, 1): decay across the chunk
    to_end = (_per_key(g[:, :, -1:]) - _per_key(g)).exp()  # (B, H, L, d_k): decay from s to the end
    new_state = g_end.exp() * state + (k * to_end).transpose(-1, -2) @ v  # (B, H, d_k, d_v)
    return intra, inter, new_state


def chunkwise_parts(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chunkwise form, with its two contributions kept apart (Lightning Attention-2's
    intra-block and inter-block parts): intra (B, H, T, d_v) from masked attention inside each
    chunk, inter (B, H, T, d_v) from the state carried between chunks, and the final state."""
    _check(q, k, v, log_decay)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    B, H, T, Dk = q.shape
    g = _full_log_decay(log_decay, q)
    state = q.new_zeros(B, H, Dk, v.shape[-1]) if initial_state is None else initial_state
    future = future_mask(min(chunk_size, T), q.device)  # made once, sliced for a shorter last chunk
    intras, inters = [], []
    # split, not slicing in a loop: the backward of a slice writes into a zero tensor of the full
    # length for every chunk (O(T^2 / C) work), split's backward is one concatenation
    chunks = zip(*(t.split(chunk_size, dim=2) for t in (q, k, v, g)))  # the last chunk may be shorter
    for q_c, k_c, v_c, g_c in chunks:
        intra, inter, state = _chunk(q_c, k_c, v_c, g_c, state, future)
        intras.append(intra)
        inters.append(inter)
    return torch.cat(intras, dim=2), torch.cat(inters, dim=2), state


def linear_attention_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, one step at a time: S_t = diag(a_t) S_{t-1} + k_t v_t^T, o_t = q_t^T S_t."""
    _check(q, k, v, log_decay)
    B, H, T, Dk = q.shape
    decay = _per_key(_full_log_decay(log_decay, q)).exp()  # (B, H, T, d_k or 1)
    state = q.new_zeros(B, H, Dk, v.shape[-1]) if initial_state is None else initial_state
    outputs = []
    for t in range(T):
        write = k[:, :, t, :, None] * v[:, :, t, None, :]  # (B, H, d_k, d_v): k_t v_t^T
        state = decay[:, :, t, :, None] * state + write
        outputs.append(torch.einsum("bhc,bhcv->bhv", q[:, :, t], state))
    return torch.stack(outputs, dim=2), state  # (B, H, T, d_v), (B, H, d_k, d_v)


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    *,
    mode: str = "chunkwise",
    chunk_size: int = 64,
    initial_state: torch.Tensor | None = None,
    normalize: bool = False,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gated linear attention in any of its three forms. q, k (B, H, T, d_k), v (B, H, T, d_v),
    log_decay: None, (H,), (B, H, T) or (B, H, T, d_k) (log of a_t <= 0), initial_state
    (B, H, d_k, d_v'). -> outputs (B, H, T, d_v), final state (B, H, d_k, d_v').

    normalize=True divides by the kernel normaliser q_t . sum_s k_s (Katharopoulos et al.): it
    rides along as one extra value column of ones, so the state is (d_k, d_v + 1), S and z together.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if normalize:
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)  # (B, H, T, d_v + 1)
    if mode == "recurrent":
        out, state = linear_attention_recurrent(q, k, v, log_decay, initial_state=initial_state)
    else:  # parallel: one chunk covering the sequence
        size = max(q.shape[2], 1) if mode == "parallel" else chunk_size
        intra, inter, state = chunkwise_parts(
            q, k, v, log_decay, chunk_size=size, initial_state=initial_state
        )
        out = intra + inter
    if normalize:
        out = out[..., :-1] / (out[..., -1:] + eps)  # numerator / (q_t . z_t)
    return out, state


def attend_with_cache(
    owner: torch.nn.Module,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_decay: torch.Tensor | None,
    cache: RecurrentState | None,
    *,
    mode: str,
    chunk_size: int,
    normalize: bool = False,
) -> torch.Tensor:
    """`linear_attention` for a mixer: reads the state from `cache` (a RecurrentState with a
    "state" entry), writes the new one back; single-token steps take the recurrent form.
    The caller advances cache.length (it may need the old one for positions)."""
    state = None if cache is None else cache["state"]
    if cache is not None and q.shape[2] == 1:
        mode = "recurrent"
    out, new_state = linear_attention(
        q, k, v, log_decay, mode=mode, chunk_size=chunk_size, initial_state=state, normalize=normalize
    )
    if cache is not None:
        cache["state"] = new_state
    return out


# ------------------------------------------------------------------------------- retention
def retention_decays(n_heads: int) -> torch.Tensor:
    """gamma_h = 1 - 2^(-5 - h), h = 0 .. H-1: from ~32 to ~2^(4+H) tokens of memory. (H,) float64."""
    return 1 - 2.0 ** (-5 - torch.arange(n_heads, dtype=torch.float64))


class Retention(nn.Module):
    """RetNet's multi-scale retention, (B, T, D) -> (B, T, D): per head, rotated q and k, decayed
    linear attention, GroupNorm, swish output gate (Sun et al., 2023, arXiv:2307.08621).

    gated=False: the fixed decay gamma_h = 1 - 2^(-5 - h) per head (RetNet).
    gated=True: a data-dependent decay gamma_t = sigmoid(x_t W_gamma + b)^(1/tau) per head and
    token (gated retention, "You Only Cache Once", Sun et al., 2024, arXiv:2405.05254)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        value_factor: int = 2,
        rope_theta: float = 10000.0,
        mode: str = "chunkwise",
        chunk_size: int = 64,
        gated: bool = False,
        gate_temperature: float = 16.0,
    ):
        super().__init__()
        if d_model % n_heads or (d_model // n_heads) % 2:
            raise ValueError(f"d_model={d_model} / n_heads={n_heads} must be an even head size")
        self.d_model, self.n_heads = d_model, n_heads
        self.head_dim, self.value_dim = d_model // n_heads, value_factor * d_model // n_heads
        self.mode, self.chunk_size = mode, chunk_size
        self.rope = RotaryEmbedding(self.head_dim, rope_theta)
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, n_heads * self.value_dim, bias=False)
        self.gate_proj = nn.Linear(d_model, n_heads * self.value_dim, bias=False)
        self.group_norm = nn.GroupNorm(n_heads, n_heads * self.value_dim, affine=True)
        self.out_proj = nn.Linear(n_heads * self.value_dim, d_model, bias=False)
        self.gated, self.gate_temperature = gated, gate_temperature
        if gated:
            self.decay_proj = nn.Linear(d_model, n_heads, bias=True)

    def init_weights(self) -> None:
        if self.gated:  # start near RetNet's decays: sigmoid(b)^(1/16) = 1 - 2^(-5-h) roughly
            with torch.no_grad():
                target = torch.log(retention_decays(self.n_heads)) * self.gate_temperature
                self.decay_proj.bias.copy_(target - torch.log1p(-target.exp()))  # logit of gamma^tau

    def init_cache(self, batch: int) -> RecurrentState:
        """The retention state per head, (B, H, head_dim, value_dim)."""
        return RecurrentState(self, batch, ("state",))

    def log_decay(self, x: torch.Tensor) -> torch.Tensor:
        """log gamma: (H,) fixed (RetNet), or (B, H, T) from the tokens (gated retention)."""
        if self.gated:
            return (F.logsigmoid(self.decay_proj(x)) / self.gate_temperature).transpose(1, 2)
        return torch.log(retention_decays(self.n_heads)).to(x.device, x.dtype)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)
        k = self.k_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_heads, self.value_dim).transpose(1, 2)  # (B, H, T, Dv)
        cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin) * self.head_dim**-0.5
        log_decay = self.log_decay(x)
        out = attend_with_cache(self, q, k, v, log_decay, cache, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache.length += T
        out = out.transpose(1, 2).reshape(B * T, self.n_heads * self.value_dim)  # (B*T, H*Dv)
        out = self.group_norm(out).view(B, T, -1)  # each head normalised on its own
        return self.out_proj(F.silu(self.gate_proj(x)) * out)  # (B, T, D)
