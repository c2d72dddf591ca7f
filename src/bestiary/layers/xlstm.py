"""xLSTM's two cells: the mLSTM (matrix memory, parallelisable) and the sLSTM (scalar memory with
recurrent connections), and the blocks that wrap them.

Paper: "xLSTM: Extended Long Short-Term Memory" (Beck et al., 2024, arXiv:2405.04517). Both cells
give the LSTM an *exponential* input gate, i_t = exp(i~_t), so that a new input can override what
the memory holds, and a normaliser state n_t that the output is divided by. exp overflows, so a
stabiliser m_t (the running maximum of the log gates) is subtracted from every exponent; the
outputs do not depend on it, it only keeps the numbers in range:

    m_t = max(log f_t + m_{t-1}, i~_t)          i'_t = exp(i~_t - m_t)    f'_t = exp(log f_t + m_{t-1} - m_t)

- mLSTM: per head, a matrix memory C_t = f'_t C_{t-1} + i'_t k_t v_t^T (a fast-weight / linear
  attention state), n_t = f'_t n_{t-1} + i'_t k_t, and h_t = C_t^T q_t / max(|n_t . q_t|, exp(-m_t)).
  The gates depend on the input only (no h_{t-1}), so the whole sequence can be computed at once,
  like masked attention with a decay matrix D[t, s] = exp(sum_{r=s+1..t} log f_r + i~_s):
  `mlstm_parallel` (quadratic), `mlstm_chunkwise` (parallel inside chunks, the state carried between
  them) and `mlstm_recurrent` (one step at a time, what decoding uses) compute the same thing.
- sLSTM: scalar memories c_t = f' c_{t-1} + i' tanh(z_t), n_t = f' n_{t-1} + i', h_t = o_t c_t / n_t,
  whose gates also read h_{t-1} through block-diagonal (per-head) recurrent matrices. That feedback
  is nonlinear (h_{t-1} passes through the gates' sigmoid/exp and tanh), so step t cannot start
  before step t-1 has finished: the sLSTM has no parallel or chunkwise form, only the recurrence.
  In exchange it can do state tracking that the mLSTM (and attention) cannot.

The empty state is C = 0, n = 0, m = 0 (as the reference kernels start), and every form uses that
convention, so they agree exactly (the small eps in the mLSTM's denominator would otherwise make
the stabiliser's starting value visible).

Blocks (section 2.4 of the paper, as the reference package `xlstm` builds them):
- mLSTM block, *pre up-projection*: up-project to 2 D (a cell branch and a gate branch), a causal
  depthwise convolution + SiLU feeding q and k, block-diagonal q/k/v projections, the mLSTM cell, a
  per-head norm, a learnable skip from the convolution, the SiLU gate, down-projection. No MLP.
- sLSTM block, *post up-projection*: a causal convolution + SiLU feeding the input and forget gates,
  the sLSTM cell at width D, a per-head norm, then a gated (GeLU) MLP after it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.causal_lm import check_sequence
from bestiary.layers.mlp import SwiGLU
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.state import RecurrentState, zeros_or

MLSTM_MODES = ("parallel", "chunkwise", "recurrent")

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # C (B, H, Dk, Dv), n (B, H, Dk), m (B, H)


# ------------------------------------------------------------------------------- the mLSTM cell
def empty_mlstm_state(q: torch.Tensor, v: torch.Tensor) -> MLSTMState:
    """C = 0, n = 0, m = 0 for queries q (B, H, T, Dk) and values v (B, H, T, Dv)."""
    B, H, _, Dk = q.shape
    return q.new_zeros(B, H, Dk, v.shape[-1]), q.new_zeros(B, H, Dk), q.new_zeros(B, H)


def mlstm_recurrent(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor,
    i: torch.Tensor,
    state: MLSTMState | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, MLSTMState]:
    """The mLSTM one step at a time. q, k (B, H, T, Dk); v (B, H, T, Dv); log_f (log forget gate) and
    i (input gate pre-activation) (B, H, T). Returns h (B, H, T, Dv) and the last (C, n, m)."""
    C, n, m = empty_mlstm_state(q, v) if state is None else state
    q = q * q.shape[-1] ** -0.5  # the 1/sqrt(d) of attention
    outputs = []
    for t in range(q.shape[2]):
        m_new = torch.maximum(log_f[:, :, t] + m, i[:, :, t])  # (B, H)
        forget = torch.exp(log_f[:, :, t] + m - m_new)[..., None]  # (B, H, 1)
        write = torch.exp(i[:, :, t] - m_new)[..., None]
        k_t, v_t, q_t = k[:, :, t], v[:, :, t], q[:, :, t]
        C = forget[..., None] * C + write[..., None] * k_t[..., :, None] * v_t[..., None, :]  # (B, H, Dk, Dv)
        n = forget * n + write * k_t  # (B, H, Dk)
        m = m_new
        numerator = torch.einsum("bhk,bhkv->bhv", q_t, C)
        denominator = torch.maximum((q_t * n).sum(-1).abs(), torch.exp(-m)) + eps  # (B, H)
        outputs.append(numerator / denominator[..., None])
    return torch.stack(outputs, dim=2), (C, n, m)


def _log_decay_matrix(log_f: torch.Tensor, i: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log D[t, s] = sum_{r=s+1..t} log f_r + i_s for s <= t, -inf above the diagonal; and the
    within-span cumulative log forget gate b_t = sum_{r<=t} log f_r. log_f, i (B, H, L)."""
    L = log_f.shape[-1]
    b = torch.cumsum(log_f, dim=-1)  # (B, H, L)
    log_D = b[..., :, None] - b[..., None, :] + i[..., None, :]  # (B, H, L, L)
    causal = torch.ones(L, L, dtype=torch.bool, device=log_f.device).tril()
    return torch.where(causal, log_D, -math.inf), b


def mlstm_parallel(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, log_f: torch.Tensor, i: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """The mLSTM over a whole sequence at once, from the empty state: masked attention whose
    weights are q.k scaled by the gate matrix D, normalised by max(|row sum|, exp(-m)).
    Shapes as `mlstm_recurrent`; returns h (B, H, T, Dv). O(T^2) memory, no loop."""
    log_D, b = _log_decay_matrix(log_f, i)  # (B, H, T, T), (B, H, T)
    # m_t: the largest exponent in row t, including the empty initial state's (m_0 = 0 decayed: b_t)
    m = torch.maximum(b, log_D.amax(dim=-1))  # (B, H, T)
    scores = (q @ k.transpose(-1, -2)) * q.shape[-1] ** -0.5 * torch.exp(log_D - m[..., None])
    denominator = torch.maximum(scores.sum(-1).abs(), torch.exp(-m)) + eps  # (B, H, T)
    return (scores @ v) / denominator[..., None]


def mlstm_chunkwise(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor,
    i: torch.Tensor,
    state: MLSTMState | None = None,
    chunk_size: int | None = 64,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, MLSTMState]:
    """The mLSTM chunk by chunk: within a chunk of L positions the parallel form, plus what the
    state (C, n, m) carried from the previous chunks contributes; the state is then advanced over
    the chunk in one step. T / L sequential steps instead of T, L^2 memory instead of T^2.
    chunk_size=None: one chunk (the parallel form, continuing from `state`)."""
    C, n, m_prev = empty_mlstm_state(q, v) if state is None else state
    T = q.shape[2]
    size = T if chunk_size is None else chunk_size
    q = q * q.shape[-1] ** -0.5
    outputs = []
    for start in range(0, T, size):
        span = slice(start, start + size)
        q_c, k_c, v_c = q[:, :, span], k[:, :, span], v[:, :, span]  # (B, H, L, D)
        log_D, b = _log_decay_matrix(log_f[:, :, span], i[:, :, span])  # (B, H, L, L), (B, H, L)
        from_state = b + m_prev[..., None]  # (B, H, L): log weight of the carried state at each t
        m = torch.maximum(from_state, log_D.amax(dim=-1))  # (B, H, L)
        scores = (q_c @ k_c.transpose(-1, -2)) * torch.exp(log_D - m[..., None])  # (B, H, L, L)
        state_weight = torch.exp(from_state - m)  # (B, H, L)
        numerator = scores @ v_c + state_weight[..., None] * (q_c @ C)  # (B, H, L, Dv)
        dot = scores.sum(-1) + state_weight * (q_c @ n[..., None]).squeeze(-1)  # (B, H, L)
        outputs.append(numerator / (torch.maximum(dot.abs(), torch.exp(-m)) + eps)[..., None])
        # advance the state to the chunk's end: the stabiliser is the last position's m
        m_end = m[..., -1]  # (B, H)
        carried = torch.exp(b[..., -1] + m_prev - m_end)  # (B, H)
        written = torch.exp(b[..., -1:] - b + i[:, :, span] - m_end[..., None])  # (B, H, L)
        C = carried[..., None, None] * C + (k_c * written[..., None]).transpose(-1, -2) @ v_c
        n = carried[..., None] * n + (k_c * written[..., None]).sum(dim=2)
        m_prev = m_end
    return torch.cat(outputs, dim=2), (C, n, m_prev)


# --------------------------------------------------------------------------------- shared parts
class HeadwiseLinear(nn.Module):
    """A block-diagonal linear map: the channels split into n_blocks groups, each with its own small
    square matrix (xLSTM's q/k/v and gate projections; far fewer parameters than a dense one)."""

    def __init__(self, dim: int, n_blocks: int):
        super().__init__()
        self.n_blocks = n_blocks
        block = dim // n_blocks
        self.weight = nn.Parameter(torch.empty(n_blocks, block, block))  # (blocks, out, in)
        nn.init.normal_(self.weight, std=math.sqrt(2 / 5 / block))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        blocks = x.view(*x.shape[:-1], self.n_blocks, -1)  # (..., blocks, in)
        return torch.einsum("...hi,hoi->...ho", blocks, self.weight).reshape(x.shape)


def head_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm within each head, then a per-channel scale: x (B, T, H, Dh) -> (B, T, H * Dh)."""
    normed = F.layer_norm(x, x.shape[-1:], eps=eps)
    return normed.reshape(*x.shape[:2], -1) * weight


# --------------------------------------------------------------------------------- the mixers
class mLSTMMixer(nn.Module):  # noqa: N801 -- the paper's name
    """The xLSTM paper's mLSTM layer (pre up-projection), a token mixer (B, T, D) -> (B, T, D).

    d_model: D; n_heads: mLSTM heads over the inner width 2 D; qkv_block_size: the size of the
    diagonal blocks of the q/k/v projections; kernel_size: the causal convolution's width;
    mode: 'parallel' | 'chunkwise' | 'recurrent' (the same function; one-token steps always use the
    recurrence, and with a cache 'parallel' runs as one chunk continuing from the state)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        qkv_block_size: int = 4,
        kernel_size: int = 4,
        mode: str = "parallel",
        chunk_size: int = 64,
    ):
        super().__init__()
        if mode not in MLSTM_MODES:
            raise ValueError(f"mode must be one of {MLSTM_MODES}, got {mode!r}")
        self.d_model, self.n_heads, self.mode, self.chunk_size = d_model, n_heads, mode, chunk_size
        self.inner = inner = 2 * d_model
        self.up = nn.Linear(d_model, 2 * inner, bias=False)  # the cell branch and the output gate z
        self.conv = CausalDepthwiseConv(inner, kernel_size)
        self.q_proj = HeadwiseLinear(inner, inner // qkv_block_size)
        self.k_proj = HeadwiseLinear(inner, inner // qkv_block_size)
        self.v_proj = HeadwiseLinear(inner, inner // qkv_block_size)
        # the gates read q, k and v together and give one scalar per head
        self.input_gate = nn.Linear(3 * inner, n_heads)
        self.forget_gate = nn.Linear(3 * inner, n_heads)
        self.norm_weight = nn.Parameter(torch.ones(inner))
        self.skip = nn.Parameter(torch.ones(inner))  # learnable skip from the convolution's output
        self.down = nn.Linear(inner, d_model, bias=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """The reference init: gates start from their biases, the forget gate open (bias 3..6 across
        heads, so f = sigmoid(.) ~ 0.95..0.998: long memory), small random input-gate biases."""
        nn.init.zeros_(self.forget_gate.weight)
        self.forget_gate.bias.copy_(torch.linspace(3.0, 6.0, self.n_heads))
        nn.init.zeros_(self.input_gate.weight)
        nn.init.normal_(self.input_gate.bias, std=0.1)
        self.norm_weight.fill_(1.0)
        self.skip.fill_(1.0)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "C", "n", "m"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H = self.n_heads
        cell_in, z = self.up(x).chunk(2, dim=-1)  # (B, T, inner) each
        conv, conv_state = self.conv(cell_in, None if cache is None else cache["conv"])
        conv = F.silu(conv)
        q, k, v = self.q_proj(conv), self.k_proj(conv), self.v_proj(cell_in)  # (B, T, inner)
        gate_in = torch.cat([q, k, v], dim=-1)  # (B, T, 3 inner)
        i = self.input_gate(gate_in).transpose(1, 2)  # (B, H, T)
        log_f = F.logsigmoid(self.forget_gate(gate_in)).transpose(1, 2)  # (B, H, T)
        q, k, v = (t.view(B, T, H, -1).transpose(1, 2) for t in (q, k, v))  # (B, H, T, Dh)

        state = None if cache is None or cache["C"] is None else (cache["C"], cache["n"], cache["m"])
        h, state = run_mlstm(
            q, k, v, log_f, i, state, self.mode, self.chunk_size, with_cache=cache is not None
        )
        h = head_norm(h.transpose(1, 2), self.norm_weight, eps=1e-5)  # (B, T, inner)
        if cache is not None:
            cache["conv"], (cache["C"], cache["n"], cache["m"]) = conv_state, state
            cache.length += T
        return self.down((h + self.skip * conv) * F.silu(z))


def run_mlstm(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    log_f: torch.Tensor,
    i: torch.Tensor,
    state: MLSTMState | None,
    mode: str,
    chunk_size: int,
    *,
    with_cache: bool,
) -> tuple[torch.Tensor, MLSTMState | None]:
    """Dispatch to one of the three equivalent forms: one-token steps and mode='recurrent' loop;
    'chunkwise' runs chunks; 'parallel' runs the quadratic form (as one chunk when a state must be
    read or returned)."""
    if mode == "recurrent" or (with_cache and q.shape[2] == 1):
        return mlstm_recurrent(q, k, v, log_f, i, state)
    if mode == "chunkwise":
        return mlstm_chunkwise(q, k, v, log_f, i, state, chunk_size)
    if with_cache:
        return mlstm_chunkwise(q, k, v, log_f, i, state, chunk_size=None)
    return mlstm_parallel(q, k, v, log_f, i), None


def slstm_step(
    gates: torch.Tensor, recurrent: torch.Tensor, state: tuple[torch.Tensor, ...]
) -> tuple[torch.Tensor, ...]:
    """One sLSTM step. gates: the input-driven pre-activations + bias (B, 4, H, Dh) in the order
    (input, forget, cell input z, output); recurrent (4, H, Dh, Dh); state (h, c, n, m) each
    (B, H, Dh). Returns the new (h, c, n, m)."""
    h, c, n, m = state
    # every gate also reads the previous output, through one small matrix per head (block-diagonal)
    pre = gates + torch.einsum("bhi,ghio->bgho", h, recurrent)  # (B, 4, H, Dh)
    i_pre, f_pre, z_pre, o_pre = pre.unbind(dim=1)
    log_f = F.logsigmoid(f_pre)  # a sigmoid forget gate, in log space
    m_new = torch.maximum(log_f + m, i_pre)  # stabiliser
    i_gate, f_gate = torch.exp(i_pre - m_new), torch.exp(log_f + m - m_new)
    c = f_gate * c + i_gate * torch.tanh(z_pre)
    n = f_gate * n + i_gate
    return torch.sigmoid(o_pre) * c / n, c, n, m_new


class sLSTMMixer(nn.Module):  # noqa: N801 -- the paper's name
    """The xLSTM paper's sLSTM layer, a token mixer (B, T, D) -> (B, T, D), recurrent only (see the
    module docstring for why). n_heads: the heads of the block-diagonal recurrence; kernel_size: the
    causal convolution that feeds the input and forget gates."""

    def __init__(
        self, d_model: int, n_heads: int, *, kernel_size: int = 4, layer_id: int = 0, n_layers: int = 1
    ):
        super().__init__()
        self.d_model, self.n_heads, self.layer_id, self.n_layers = d_model, n_heads, layer_id, n_layers
        self.head_dim = d_model // n_heads
        self.conv = CausalDepthwiseConv(d_model, kernel_size)
        # input-to-gate maps, block-diagonal per head: i and f read the convolved input, z and o the input
        self.input_gate = HeadwiseLinear(d_model, n_heads)
        self.forget_gate = HeadwiseLinear(d_model, n_heads)
        self.cell_input = HeadwiseLinear(d_model, n_heads)
        self.output_gate = HeadwiseLinear(d_model, n_heads)
        self.recurrent = nn.Parameter(
            torch.zeros(4, n_heads, self.head_dim, self.head_dim)
        )  # (gate, H, in, out)
        self.bias = nn.Parameter(torch.zeros(4, d_model))  # per gate, in the order i, f, z, o
        self.norm_weight = nn.Parameter(torch.ones(d_model))

    @torch.no_grad()
    def init_weights(self) -> None:
        """The reference init: zero recurrent matrices (the cell starts as a gated feed-forward map)
        and forget-gate biases that open wider in later heads and later blocks ("powerlaw")."""
        self.recurrent.zero_()
        self.bias.zero_()
        ratio = 0.3 + 1.3 * self.layer_id / max(self.n_layers - 1, 1)
        position = torch.arange(self.head_dim, dtype=torch.float32) / max(self.head_dim - 1, 1)
        forget_bias = -(-5.0 + 12.0 * position**ratio)
        self.bias[1].copy_(forget_bias.repeat(self.n_heads))
        self.norm_weight.fill_(1.0)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "h", "c", "n", "m"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, D = x.shape
        H, Dh = self.n_heads, self.head_dim
        conv, conv_state = self.conv(x, None if cache is None else cache["conv"])
        conv = F.silu(conv)
        gates = torch.stack(
            [self.input_gate(conv), self.forget_gate(conv), self.cell_input(x), self.output_gate(x)], dim=2
        )  # (B, T, 4, D)
        gates = (gates + self.bias).view(B, T, 4, H, Dh)
        zeros = x.new_zeros(B, H, Dh)
        state = tuple(zeros_or(cache, name, lambda: zeros) for name in ("h", "c", "n", "m"))
        outputs = []
        for t in range(T):
            state = slstm_step(gates[:, t], self.recurrent, state)
            outputs.append(state[0])
        h = torch.stack(outputs, dim=1)  # (B, T, H, Dh)
        if cache is not None:
            cache["conv"] = conv_state
            cache["h"], cache["c"], cache["n"], cache["m"] = state
            cache.length += T
        return head_norm(h, self.norm_weight, eps=1e-5)


# ---------------------------------------------------------------------------------- the blocks
def mlstm_block(
    d_model: int,
    n_heads: int,
    *,
    qkv_block_size: int,
    kernel_size: int,
    mode: str,
    chunk_size: int,
    norm_eps: float,
) -> Block:
    """x -> x + mLSTM(LayerNorm(x)): the mLSTM block has its own up-projection, so no MLP."""
    mixer = mLSTMMixer(
        d_model,
        n_heads,
        qkv_block_size=qkv_block_size,
        kernel_size=kernel_size,
        mode=mode,
        chunk_size=chunk_size,
    )
    return Block(d_model, mixer, None, norm="layernorm", norm_eps=norm_eps, norm_bias=False)


def slstm_block(
    d_model: int,
    n_heads: int,
    d_ff: int,
    *,
    kernel_size: int,
    norm_eps: float,
    layer_id: int = 0,
    n_layers: int = 1,
) -> Block:
    """x -> x + sLSTM(LayerNorm(x)) -> x + GeGLU(LayerNorm(x)): the MLP after the cell is the
    sLSTM block's post up-projection."""
    mixer = sLSTMMixer(d_model, n_heads, kernel_size=kernel_size, layer_id=layer_id, n_layers=n_layers)
    mlp = SwiGLU(d_model, d_ff, activation="gelu")
    return Block(d_model, mixer, mlp, norm="layernorm", norm_eps=norm_eps, norm_bias=False)
