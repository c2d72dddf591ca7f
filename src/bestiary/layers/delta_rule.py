"""The delta rule: a fast-weight matrix that is corrected, not just added to, at every token.

Linear attention keeps a matrix memory S (keys x values) and writes every token into it,
S_t = S_{t-1} + k_t v_t^T, so old associations are never removed and the memory fills up. The
delta rule ("Linear Transformers Are Secretly Fast Weight Programmers", Schlag, Irie & Schmidhuber,
2021, arXiv:2102.11174) first reads what S already stores for k_t, then writes only the error:

    prediction_t = S_{t-1}^T k_t                                   what the memory recalls for k_t
    S_t = S_{t-1} + k_t (beta_t (v_t - prediction_t))^T            one SGD step on ||S^T k_t - v_t||^2 / 2
        = (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T        (a generalized Householder transform)
    o_t = S_t^T q_t

Variants only change how the old state is forgotten before the write (`log_decay`, log of the
factor):
    DeltaNet           no decay
    Gated DeltaNet     one scalar alpha_t = exp(g_t) per head and step    (arXiv:2412.06464)
    Kimi Delta Attn    one factor per key channel, diag(exp(g_t))         (arXiv:2510.26692)
    DeltaProduct       several delta steps per token (a longer sequence of the same rule)

Two equivalent forms are here:

    delta_rule_recurrent   the definition, one token at a time (what decoding does)
    delta_rule_chunkwise   chunk by chunk ("Parallelizing Linear Transformers with the Delta Rule over
                           Sequence Length", Yang et al., 2024, arXiv:2406.06484). Inside a chunk of L
                           tokens, the L corrections u_t = beta_t (v_t - prediction_t) depend on each
                           other through a unit lower-triangular system (I + A) U = ... (the UT
                           transform; its solution is the WY representation of the product of the L
                           Householder-like factors). One triangular solve replaces L dependent steps;
                           only the chunk-to-chunk state is carried sequentially.

Shapes: q, k (B, T, H, d_k); v (B, T, H, d_v); beta (B, T, H); log_decay None, (B, T, H) (scalar
per head) or (B, T, H, d_k) (per channel); state (B, H, d_k, d_v). Both return (o (B, T, H, d_v),
final state). Their agreement (outputs and gradients) is tested in tests/layers/test_delta_rule.py.

Also here, because every delta-rule mixer uses them: `ShortConv` (the causal depthwise convolution
applied to q, k, v), `l2_normalize` and `GatedRMSNorm` (the per-head output norm times a gate);
`short_conv_qkv` (project, convolve, split into heads and normalise q, k: the input stage of
DeltaNet, Gated DeltaNet and KDA) and `init_mamba2_decay` (the forgetting gates' Mamba-2 start).

Deep memories. The delta rule is one gradient step on ||S^T k - v||^2 / 2 for a *linear* memory.
Titans (arXiv:2501.00663) and MIRAS (arXiv:2504.13173) take the same step on a small MLP,
M(k) = SiLU(k W1) W2, one per head: `mlp_memory_read` evaluates it with per-token weights and
`mlp_memory_grads` backpropagates any loss gradient dloss/dM(k) to per-token (dW1, dW2), in closed
form (the tests compare it with torch.autograd). Which loss, and how old memories are retained,
is what distinguishes those models; the MLP's backward is shared.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.short_conv import CausalDepthwiseConv

MODES = ("chunkwise", "recurrent")


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """x / sqrt(|x|^2 + eps) over the last axis: unit-length keys keep beta_t in (0, 1) a step size
    that cannot blow the memory up (the eigenvalues of I - beta k k^T stay in [0, 1])."""
    return x * torch.rsqrt(x.pow(2).sum(dim=-1, keepdim=True) + eps)


def _decay_factor(log_decay_t: torch.Tensor) -> torch.Tensor:
    """exp(g_t) shaped to multiply the state (B, H, d_k, d_v): (B, H) -> (B, H, 1, 1), (B, H, d_k) -> (B, H, d_k, 1)."""
    factor = log_decay_t.exp()
    return factor[..., None, None] if factor.dim() == 2 else factor[..., None]


def delta_rule_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The definition, step by step: decay, read, correct, then answer the query."""
    B, T, H, d_k = k.shape
    d_v = v.shape[-1]
    S = k.new_zeros(B, H, d_k, d_v) if state is None else state
    outputs = []
    for t in range(T):
        if log_decay is not None:
            S = S * _decay_factor(log_decay[:, t])  # forget first: alpha_t S_{t-1}
        prediction = torch.einsum("bhkv,bhk->bhv", S, k[:, t])  # (B, H, d_v): what S recalls for k_t
        correction = beta[:, t, :, None] * (v[:, t] - prediction)  # (B, H, d_v)
        S = S + torch.einsum("bhk,bhv->bhkv", k[:, t], correction)
        outputs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, t]))
    return torch.stack(outputs, dim=1), S  # (B, T, H, d_v), (B, H, d_k, d_v)


def _decayed_scores(a: torch.Tensor, b: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """scores[i, j] = sum_c a_i[c] b_j[c] exp(G_i[c] - G_j[c]) for j <= i, else 0.

    a, b (..., L, d_k); G (..., L, c) cumulative log decay with c = 1 (scalar) or d_k (per channel).
    G_i - G_j <= 0 for j <= i, so every exp is a decay <= 1 and nothing overflows."""
    L = a.shape[-2]
    future = torch.ones(L, L, dtype=torch.bool, device=a.device).triu(1)
    if G.shape[-1] == 1:  # the same decay for every channel: a plain matrix product, then decay
        gap = (G - G.transpose(-1, -2)).masked_fill(future, float("-inf")).exp()  # (..., L, L)
        return (a @ b.transpose(-1, -2)) * gap
    gap = (
        (G.unsqueeze(-2) - G.unsqueeze(-3)).masked_fill(future[..., None], float("-inf")).exp()
    )  # (..., L, L, d_k)
    return torch.einsum("...ic,...jc,...ijc->...ij", a, b, gap)


def delta_rule_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same outputs and final state as `delta_rule_recurrent`, chunk by chunk.

    Within a chunk with start state S_0 and cumulative log decay G_t (Gamma_t = diag(exp(G_t))):
        S_t = Gamma_t S_0 + sum_{j<=t} diag(exp(G_t - G_j)) k_j u_j^T        (u_j: the corrections)
        u_t = beta_t v_t - beta_t S_0^T Gamma_t k_t - sum_{j<t} A_tj u_j,
              A_tj = beta_t k_t^T diag(exp(G_t - G_j)) k_j
    so (I + A) U = V_beta - K_decayed S_0, solved once per chunk for the two right-hand sides
    (the UT transform): U = W_v - W_k S_0. Outputs: o_t = S_0^T Gamma_t q_t + sum_{j<=t} P_tj u_j.
    """
    B, T, H, d_k = k.shape
    d_v = v.shape[-1]
    L = chunk_size
    pad = (L - T % L) % L  # padded steps have k = 0 and beta = 0: they change nothing
    if log_decay is None:
        log_decay = k.new_zeros(B, T, H)
    per_channel = log_decay.dim() == 4

    def chunks(x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, ...) -> (B, H, N, L, ...) with T padded to N * L."""
        x = x.movedim(1, 2)  # (B, H, T, ...)
        x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
        return x.reshape(B, H, -1, L, *x.shape[3:])

    q, k, v, beta = chunks(q), chunks(k), chunks(v), chunks(beta)  # (B, H, N, L, d) / (B, H, N, L)
    g = chunks(log_decay if per_channel else log_decay[..., None])  # (B, H, N, L, c), c = d_k or 1
    G = g.cumsum(dim=3)  # (B, H, N, L, c): log of the decay from the chunk start to step t
    k_beta, v_beta = k * beta[..., None], v * beta[..., None]

    # The UT transform: one unit lower-triangular solve per chunk for both right-hand sides
    eye = torch.eye(L, dtype=k.dtype, device=k.device)
    system = eye + _decayed_scores(k_beta, k, G).tril(-1)  # (B, H, N, L, L): I + A
    W_v = torch.linalg.solve_triangular(system, v_beta, upper=False, unitriangular=True)  # (B, H, N, L, d_v)
    W_k = torch.linalg.solve_triangular(
        system, k_beta * G.exp(), upper=False, unitriangular=True
    )  # (.., d_k)
    scores = _decayed_scores(q, k, G)  # (B, H, N, L, L): P, causal within the chunk (diagonal included)

    S = k.new_zeros(B, H, d_k, d_v) if state is None else state
    outputs = []
    for n in range(q.shape[2]):  # the only sequential part: one step per chunk
        u = W_v[:, :, n] - W_k[:, :, n] @ S  # (B, H, L, d_v): this chunk's corrections
        outputs.append((q[:, :, n] * G[:, :, n].exp()) @ S + scores[:, :, n] @ u)
        G_end = G[:, :, n, -1:]  # (B, H, 1, c): the decay over the whole chunk
        S = (
            S * G_end.exp().transpose(-1, -2)
            + (k[:, :, n] * (G_end - G[:, :, n]).exp()).transpose(-1, -2) @ u
        )
    o = torch.stack(outputs, dim=2).reshape(B, H, -1, d_v)[:, :, :T]  # (B, H, T, d_v)
    return o.movedim(1, 2), S  # (B, T, H, d_v), (B, H, d_k, d_v)


def delta_rule(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    beta: torch.Tensor,
    log_decay: torch.Tensor | None = None,
    state: torch.Tensor | None = None,
    *,
    mode: str = "chunkwise",
    chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Either form by name; a single token always takes the recurrent step (nothing to chunk)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "recurrent" or k.shape[1] == 1:
        return delta_rule_recurrent(q, k, v, beta, log_decay, state)
    return delta_rule_chunkwise(q, k, v, beta, log_decay, state, chunk_size)


class ShortConv(CausalDepthwiseConv):
    """The causal depthwise convolution of `layers.short_conv` without a bias, then an activation.
    Every delta-rule layer puts one on q, k and v: it lets a key mix in its few neighbours before it
    is written, which the papers found essential for recall.

    forward(x (B, T, C), window (B, kernel_size - 1, C) or None) -> (y (B, T, C), new window): the
    window holds the last inputs, so decoding continues the convolution across calls."""

    def __init__(self, channels: int, kernel_size: int, activation: str = "silu"):
        super().__init__(channels, kernel_size, bias=False)
        self.activation = nn.SiLU() if activation == "silu" else nn.Identity()

    def forward(
        self, x: torch.Tensor, window: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        y, new_window = super().forward(x, window)
        return self.activation(y), new_window


def short_conv_qkv(
    layer: nn.Module, x: torch.Tensor, window: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The input stage DeltaNet, Gated DeltaNet and KDA share. `layer` has q_proj, k_proj, v_proj
    (D -> H d each), conv (a `ShortConv` over the three together) and n_heads.

    x (B, T, D), window: the conv's last inputs (None at the start) -> q, k, v (B, T, H, d) and
    the new window. q and k are L2-normalised (the delta rule's step-size condition), q also scaled
    by d^-0.5 as attention scales its scores."""
    B, T, _ = x.shape
    qkv = torch.cat([layer.q_proj(x), layer.k_proj(x), layer.v_proj(x)], dim=-1)  # (B, T, 3 H d)
    qkv, window = layer.conv(qkv, window)
    q, k, v = qkv.view(B, T, 3, layer.n_heads, -1).unbind(dim=2)  # each (B, T, H, d)
    return l2_normalize(q) * q.shape[-1] ** -0.5, l2_normalize(k), v, window


def init_mamba2_decay(A_log: nn.Parameter, dt_bias: nn.Parameter) -> None:
    """Mamba-2's initialisation of a learned decay log alpha = -exp(A_log) * softplus(a + dt_bias), in
    place: A ~ U(1, 16) (stored as log A) and time steps dt log-uniform in [1e-3, 0.1] (stored as
    softplus^{-1}(dt), so a zero input a starts at dt). Gated DeltaNet, Gated DeltaProduct and KDA
    all start their forgetting gates here."""
    with torch.no_grad():
        A_log.copy_(torch.empty(A_log.shape).uniform_(1, 16).log())
        dt = torch.exp(torch.rand(dt_bias.shape) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^{-1}(dt)


class GatedRMSNorm(nn.Module):
    """RMSNorm over each head's output, times act(gate): y = x / rms(x) * weight * act(gate).

    The output gate of Gated DeltaNet (act = SiLU) and KDA (act = sigmoid); with gate=None a plain
    per-head RMSNorm (DeltaNet). Computed in at least float32 (float64 stays float64)."""

    def __init__(self, dim: int, eps: float = 1e-6, activation: str = "silu"):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.activation = torch.sigmoid if activation == "sigmoid" else F.silu

    def forward(self, x: torch.Tensor, gate: torch.Tensor | None = None) -> torch.Tensor:
        wide = x.to(torch.promote_types(x.dtype, torch.float32))
        y = wide * torch.rsqrt(wide.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight
        if gate is not None:
            y = y * self.activation(gate.to(y.dtype))
        return y.to(x.dtype)


def mlp_memory_read(k: torch.Tensor, W1: torch.Tensor, W2: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """M(k) = SiLU(k W1) W2, per head. k (B, T, H, d); W1 (B, [T,] H, d, m), W2 (B, [T,] H, m, d):
    one memory for all T tokens, or one per token. Returns (M(k) (B, T, H, d), pre-activation
    (B, T, H, m), hidden (B, T, H, m)) - the last two for the backward."""
    t = "t" if W1.dim() == 5 else ""
    pre = torch.einsum(f"bthd,b{t}hdm->bthm", k, W1)  # (B, T, H, m)
    hidden = F.silu(pre)
    return torch.einsum(f"bthm,b{t}hmd->bthd", hidden, W2), pre, hidden


def mlp_memory_grads(
    k: torch.Tensor, W2: torch.Tensor, pre: torch.Tensor, hidden: torch.Tensor, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token gradients of a loss through M(k) = SiLU(k W1) W2 (one shared W1, W2 (B, H, ., .)).

    grad_out = dloss_t/dM(k_t) (B, T, H, d). Returns dW1 (B, T, H, d, m) and dW2 (B, T, H, m, d):
    token t's gradient alone (each token is its own loss)."""
    grad_W2 = hidden[..., :, None] * grad_out[..., None, :]  # (B, T, H, m, d): hidden_t^T grad_t
    sig = torch.sigmoid(pre)
    grad_pre = torch.einsum("bthd,bhmd->bthm", grad_out, W2) * sig * (1 + pre * (1 - sig))  # SiLU'
    grad_W1 = k[..., :, None] * grad_pre[..., None, :]  # (B, T, H, d, m): k_t^T grad_pre_t
    return grad_W1, grad_W2
