"""RWKV: an RNN that trains like a transformer. RWKV-7 "Goose" by default; `version=4` is RWKV-4.

Papers: "RWKV: Reinventing RNNs for the Transformer Era" (Peng et al., 2023, arXiv:2305.13048) and
"RWKV-7 "Goose" with Expressive Dynamic State Evolution" (Peng et al., 2025, arXiv:2503.14456).

Every RWKV layer is two mixers, each reading the current token and (through a *token shift*) the
previous one: a time mix (the recurrence, RWKV's replacement for attention) and a channel mix (an
MLP with squared ReLU). What the time mix remembers is where the versions differ:

- RWKV-4: per channel, a decayed weighted average of past values,
      wkv_t = (sum_{i<t} e^{-(t-1-i) w + k_i} v_i + e^{u + k_t} v_t) / (same sums without v),
  with a learned decay w = exp(time_decay) > 0 and a bonus u (time_first) for the current token.
  The sums are kept as a running (numerator, denominator) pair, rescaled by their running maximum
  exponent so that e^k never overflows (the paper's numerically stable form).
- RWKV-7: per head a matrix state S (head_dim x head_dim), updated by a generalised delta rule
      S_t = S_{t-1} (diag(w_t) - kappa_hat_t^T (a_t * kappa_hat_t)) + v_t^T k_t,     y_t = S_t r_t
  w_t: a data-dependent decay per key channel; kappa_hat_t: the normalised "removal key";
  a_t: an in-context learning rate per channel (how much of the old value stored under kappa_hat
  is replaced). w, a, the gate g and the value residual (every layer mixes in layer 0's values)
  come from low-rank (LoRA-style) projections of the token-shifted input. A per-head group norm
  and a bonus term (r . (k * r_k)) v follow.

RWKV-7's state update runs in two equal forms (`mode`): the recurrence, and a chunkwise form that
handles a chunk of positions with matrix products and one triangular solve (tested equal, outputs
and gradients). RWKV-4's WKV is the recurrence only.

Simplified: plain PyTorch instead of the CUDA kernels; no RWKV-4 layer rescaling for fp16
inference; the initialisations follow the reference code's spirit, not every constant.

Preset `rwkv4_169m`: RWKV-4 Pile 169M (d 768, 12 layers, vocab 50277, context 1024, untied head),
169,342,464 parameters as transformers' RwkvForCausalLM built from the same RwkvConfig.
`HF_RWKV_NAMES` maps our RWKV-4 tensor names onto transformers'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.kv_cache import Cache
from bestiary.layers.norms import make_norm
from bestiary.layers.state import RecurrentState, zeros_or
from bestiary.options import Rule, option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 256
    n_layers: int = 4
    head_dim: int = 64  # RWKV-7's head size (RWKV-4 has no heads: every channel is its own)
    d_ff: int = 1024  # channel-mix width (4 d_model in both papers)
    version: int = option(7, choices=(4, 7))
    mode: str = option("chunkwise", choices=("chunkwise", "recurrent"))  # RWKV-7's state update
    chunk_size: int = option(16, min=1)  # positions per chunk in mode="chunkwise"
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_seq_len: int | None = None  # None: a recurrence has no length limit


RWKV4_169M = dict(
    version=4, vocab_size=50277, d_model=768, n_layers=12, d_ff=3072, max_seq_len=1024, tie_embeddings=False
)


def token_shift(x: torch.Tensor, last: torch.Tensor | None) -> torch.Tensor:
    """x (B, T, D) -> the previous position's x (B, T, D): `last` (B, D) (or zeros) then x[:, :-1]."""
    first = x.new_zeros(x.shape[0], 1, x.shape[2]) if last is None else last[:, None]
    return torch.cat([first, x[:, :-1]], dim=1)


def lora_rank(d_model: int, scale: float, power: float) -> int:
    """RWKV-7's low-rank widths, from the reference code: max(32, round(scale d^power / 32) 32)."""
    return max(32, round(scale * d_model**power / 32) * 32)


# --------------------------------------------------------------------------------------- RWKV-4
def wkv4_recurrence(
    time_decay: torch.Tensor,
    time_first: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """RWKV-4's WKV, stably. k, v (B, T, D); state = (num, den, max) each (B, D), where the true
    numerator and denominator are num e^max and den e^max. Returns wkv (B, T, D) and the new state."""
    num, den, max_exp = state
    decay = -torch.exp(time_decay)  # w < 0: the past fades by e^w per step
    outputs = []
    for t in range(k.shape[1]):
        k_t, v_t = k[:, t], v[:, t]
        # output: the past sums plus the current token with its bonus u, both rescaled by their max
        top = torch.maximum(max_exp, k_t + time_first)
        past, now = torch.exp(max_exp - top), torch.exp(k_t + time_first - top)
        outputs.append((past * num + now * v_t) / (past * den + now))
        # state: decay the past by e^w, add the current token (without the bonus)
        top = torch.maximum(max_exp + decay, k_t)
        past, now = torch.exp(max_exp + decay - top), torch.exp(k_t - top)
        num, den, max_exp = past * num + now * v_t, past * den + now, top
    return torch.stack(outputs, dim=1), (num, den, max_exp)


class TimeMix4(nn.Module):
    """RWKV-4's time mixing: token-shifted r, k, v and the WKV recurrence, sigmoid(r) * wkv."""

    def __init__(self, d_model: int, layer_id: int, n_layers: int):
        super().__init__()
        self.d_model, self.layer_id, self.n_layers = d_model, layer_id, n_layers
        self.time_decay = nn.Parameter(torch.zeros(d_model))  # log of the decay rate w
        self.time_first = nn.Parameter(torch.zeros(d_model))  # u: the current token's bonus
        # how much of the current token (vs the previous one) each projection reads, per channel
        self.time_mix_key = nn.Parameter(torch.ones(d_model))
        self.time_mix_value = nn.Parameter(torch.ones(d_model))
        self.time_mix_receptance = nn.Parameter(torch.ones(d_model))
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """The RWKV-4 reference init: decay speeds spread from slow to fast across channels (faster
        in deeper layers), a zigzag bonus, and token-shift mixes that lean on the past more deeply."""
        depth = self.layer_id / max(self.n_layers - 1, 1)  # 0 at the first layer, 1 at the last
        keep = 1.0 - self.layer_id / self.n_layers  # 1 at the first layer, towards 0 at the last
        channel = torch.arange(self.d_model, dtype=torch.float32)
        self.time_decay.copy_(-5 + 8 * (channel / max(self.d_model - 1, 1)) ** (0.7 + 1.3 * depth))
        zigzag = ((channel + 1) % 3 - 1) * 0.5
        self.time_first.copy_(math.log(0.3) + zigzag)
        ramp = channel / self.d_model
        self.time_mix_key.copy_(ramp**keep)
        self.time_mix_value.copy_(ramp**keep + 0.3 * depth)
        self.time_mix_receptance.copy_(ramp ** (0.5 * keep))

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("shift", "num", "den", "max"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        previous = token_shift(x, None if cache is None else cache["shift"])  # (B, T, D)

        def mixed(mix: torch.Tensor) -> torch.Tensor:
            return x * mix + previous * (1 - mix)

        k, v = self.key(mixed(self.time_mix_key)), self.value(mixed(self.time_mix_value))
        r = torch.sigmoid(self.receptance(mixed(self.time_mix_receptance)))  # how much to let through
        zeros = x.new_zeros(x.shape[0], self.d_model)
        state = (
            zeros_or(cache, "num", lambda: zeros),
            zeros_or(cache, "den", lambda: zeros),
            zeros_or(cache, "max", lambda: torch.full_like(zeros, -1e38)),  # "no past yet": e^-inf
        )
        wkv, (num, den, max_exp) = wkv4_recurrence(self.time_decay, self.time_first, k, v, state)
        if cache is not None:
            cache["shift"], cache["num"], cache["den"], cache["max"] = x[:, -1], num, den, max_exp
            cache.length += x.shape[1]
        return self.output(r * wkv)


class ChannelMix4(nn.Module):
    """RWKV-4's channel mixing: sigmoid(r) * W_v relu(W_k x)^2, on token-shifted inputs."""

    def __init__(self, d_model: int, d_ff: int, layer_id: int, n_layers: int):
        super().__init__()
        self.d_model, self.layer_id, self.n_layers = d_model, layer_id, n_layers
        self.time_mix_key = nn.Parameter(torch.ones(d_model))
        self.time_mix_receptance = nn.Parameter(torch.ones(d_model))
        self.key = nn.Linear(d_model, d_ff, bias=False)
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_ff, d_model, bias=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        keep = 1.0 - self.layer_id / self.n_layers
        ramp = torch.arange(self.d_model, dtype=torch.float32) / self.d_model
        self.time_mix_key.copy_(ramp**keep)
        self.time_mix_receptance.copy_(ramp**keep)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("shift",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        if cache is not None:
            cache.check(self, x)
        previous = token_shift(x, None if cache is None else cache["shift"])  # (B, T, D)
        k = x * self.time_mix_key + previous * (1 - self.time_mix_key)
        r = x * self.time_mix_receptance + previous * (1 - self.time_mix_receptance)
        if cache is not None:
            cache["shift"] = x[:, -1]
            cache.length += x.shape[1]
        return torch.sigmoid(self.receptance(r)) * self.value(torch.relu(self.key(k)).square())


# --------------------------------------------------------------------------------------- RWKV-7
def rwkv7_recurrence(
    r: torch.Tensor,
    decay: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kappa: torch.Tensor,
    a: torch.Tensor,
    state: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The generalised delta rule, one position at a time. r, decay, k, v, kappa, a: (B, T, H, N)
    (kappa: the unit-norm removal key kappa_hat); state S (B, H, N_v, N_k). Returns y (B, T, H, N)
    and the last state.

    S_t = S_{t-1} (diag(w_t) - kappa^T (a_t * kappa)) + v_t^T k_t is computed without building the
    N x N transition: S diag(w) scales the key columns, and S kappa^T (a * kappa) is a rank-1 update
    (the value S currently stores under kappa, removed at rate a)."""
    outputs = []
    for t in range(r.shape[1]):
        stored = torch.einsum("bhvk,bhk->bhv", state, kappa[:, t])  # (B, H, N): what S holds at kappa
        state = (
            state * decay[:, t, :, None, :]
            - stored[..., None] * (a[:, t] * kappa[:, t])[:, :, None, :]
            + v[:, t, :, :, None] * k[:, t, :, None, :]
        )  # (B, H, N_v, N_k)
        outputs.append(torch.einsum("bhvk,bhk->bhv", state, r[:, t]))
    return torch.stack(outputs, dim=1), state


def rwkv7_chunkwise(
    r: torch.Tensor,
    decay: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kappa: torch.Tensor,
    a: torch.Tensor,
    state: torch.Tensor,
    chunk_size: int | None = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same recurrence, chunk by chunk (shapes as `rwkv7_recurrence`; chunk_size=None: one chunk).

    Write the transition as S_{t-1} diag(w_t) + z_t b_t^T with z_t = S_{t-1} alpha_t (alpha = -kappa,
    b = a * kappa): given the z's, the state is a linear attention with two (value, key) pairs per
    position, (z_t, b_t) and (v_t, k_t), under a per-channel decay, which a chunk computes at once.
    The z's depend on each other only through earlier positions of the chunk,
        z_t = S_0 Lambda_{<t} alpha_t + sum_{s<t} z_s (b_s . Lambda_{s+1..t-1} alpha_t) + v_s (k_s . ...),
    a unit lower-triangular linear system, solved exactly. The per-channel decay products
    Lambda_{s+1..t} = exp(c_t - c_s) (c: cumulative log w) are formed pairwise, so nothing overflows."""
    T = r.shape[1]
    size = T if chunk_size is None else chunk_size
    outputs = []
    for start in range(0, T, size):
        r_c, w_c, k_c, v_c, kappa_c, a_c = (
            x[:, start : start + size].transpose(1, 2) for x in (r, decay, k, v, kappa, a)
        )  # (B, H, L, N)
        alpha, beta = -kappa_c, a_c * kappa_c
        L = r_c.shape[2]
        c = torch.cumsum(torch.log(w_c), dim=2)  # (B, H, L, N): log of w_1 ... w_t
        c_before = c - torch.log(w_c)  # log of w_1 ... w_{t-1}
        strictly = torch.ones(L, L, dtype=torch.bool, device=r.device).tril(-1)[..., None]  # s < t
        up_to = torch.ones(L, L, dtype=torch.bool, device=r.device).tril()[..., None]  # s <= t
        # pairwise decays (B, H, L_t, L_s, N): from just after s to just before t, or up to t
        decay_before = torch.exp((c_before[:, :, :, None] - c[:, :, None]).masked_fill(~strictly, -math.inf))
        decay_to = torch.exp((c[:, :, :, None] - c[:, :, None]).masked_fill(~up_to, -math.inf))

        def pairs(query: torch.Tensor, decays: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bhtn,bhtsn,bhsn->bhts", query, decays, key)  # (B, H, L, L)

        # solve (I - A_zb) Z = S_0-part + A_vk V for the removal terms z_t = S_{t-1} alpha_t
        from_state = torch.einsum("bhvk,bhtk->bhtv", state, alpha * torch.exp(c_before))  # (B, H, L, N_v)
        rhs = from_state + pairs(alpha, decay_before, k_c) @ v_c
        system = torch.eye(L, dtype=r.dtype, device=r.device) - pairs(alpha, decay_before, beta)
        z = torch.linalg.solve_triangular(system, rhs, upper=False, unitriangular=True)  # (B, H, L, N_v)
        # read out y_t = S_t r_t: the entering state, then both (value, key) pairs of positions <= t
        y = torch.einsum("bhvk,bhtk->bhtv", state, r_c * torch.exp(c))
        y = y + pairs(r_c, decay_to, beta) @ z + pairs(r_c, decay_to, k_c) @ v_c
        outputs.append(y.transpose(1, 2))  # (B, L, H, N)
        # the state at the chunk's end
        to_end = torch.exp(c[:, :, -1:] - c)  # (B, H, L, N): decay from after s to the end
        state = state * torch.exp(c[:, :, -1])[:, :, None, :]
        state = state + z.transpose(-1, -2) @ (beta * to_end) + v_c.transpose(-1, -2) @ (k_c * to_end)
    return torch.cat(outputs, dim=1), state


class FirstLayerValues:
    """RWKV-7's value residual: every layer's values are pulled towards layer 0's values at the same
    positions. Layer 0 writes them here on each forward; the later layers of the same stack read them
    (the blocks run in order, so they always see the current positions' values)."""

    def __init__(self) -> None:
        self.values: torch.Tensor | None = None


class TimeMix7(nn.Module):
    """RWKV-7's time mixing (the "Goose" state update), per head of size head_dim."""

    def __init__(
        self,
        d_model: int,
        head_dim: int,
        layer_id: int,
        n_layers: int,
        first: FirstLayerValues,
        *,
        mode: str = "chunkwise",
        chunk_size: int = 16,
    ):
        super().__init__()
        self.d_model, self.head_dim, self.layer_id, self.n_layers = d_model, head_dim, layer_id, n_layers
        self.mode, self.chunk_size = mode, chunk_size
        self.n_heads = d_model // head_dim
        self.first = first
        # token-shift mixes, x + (x_{t-1} - x) mu, one per input of r, w, k, v, a, g
        self.mix = nn.ParameterDict({name: nn.Parameter(torch.zeros(d_model)) for name in "rwkvag"})
        rank_w, rank_a = lora_rank(d_model, 1.8, 0.5), lora_rank(d_model, 1.8, 0.5)
        rank_v, rank_g = lora_rank(d_model, 1.3, 0.5), lora_rank(d_model, 0.6, 0.8)
        # low-rank projections: d = w0 + tanh(x W1) W2 for the decay, a0 + x A1 A2 for the ICL rate, ...
        self.w0, self.w1, self.w2 = self._lora(rank_w)
        self.a0, self.a1, self.a2 = self._lora(rank_a)
        if layer_id > 0:  # layer 0's values are the ones the others mix in
            self.v0, self.v1, self.v2 = self._lora(rank_v)
        self.g1 = nn.Parameter(torch.zeros(d_model, rank_g))
        self.g2 = nn.Parameter(torch.zeros(rank_g, d_model))
        self.k_k = nn.Parameter(torch.ones(d_model))  # removal key kappa = k * k_k (then normalised)
        self.k_a = nn.Parameter(torch.ones(d_model))  # how much a scales the written key
        self.r_k = nn.Parameter(torch.zeros(self.n_heads, head_dim))  # the bonus term's weights
        self.receptance = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model, bias=False)
        self.group_norm = nn.GroupNorm(self.n_heads, d_model, eps=64e-5)  # per head, as the reference

    def _lora(self, rank: int) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
        d = self.d_model
        return (
            nn.Parameter(torch.zeros(d)),
            nn.Parameter(torch.zeros(d, rank)),
            nn.Parameter(torch.zeros(rank, d)),
        )

    @torch.no_grad()
    def init_weights(self) -> None:
        """After the reference code: token-shift mixes from the channel index, decays spread from slow
        to fast, the first LoRA factors zero (the projections start at their biases) and small
        second factors, kappa = 0.85 k, and no output (zero `output`) so each layer starts as identity."""
        depth = self.layer_id / max(self.n_layers - 1, 1)
        keep = 1.0 - self.layer_id / self.n_layers
        channel = torch.arange(self.d_model, dtype=torch.float32)
        ramp = channel / self.d_model
        for name, power in zip("rwkvag", (0.2, 0.9, 0.7, 0.7, 0.9, 0.2), strict=True):
            self.mix[name].copy_(1.0 - ramp ** (power * keep))
        self.w0.copy_(-7 + 5 * (channel / max(self.d_model - 1, 1)) ** (0.85 + 1.0 * depth**0.5) + 0.5)
        for second in (self.w2, self.a2, self.g2) + ((self.v2,) if self.layer_id > 0 else ()):
            nn.init.normal_(second, std=0.1 / second.shape[0] ** 0.5)
        for first in (self.w1, self.a1, self.g1) + ((self.v1,) if self.layer_id > 0 else ()):
            first.zero_()
        self.a0.zero_()
        if self.layer_id > 0:
            self.v0.fill_(1.0)
        self.k_k.fill_(0.85)
        self.k_a.fill_(1.0)
        self.r_k.fill_(-0.04)
        self.output.weight.zero_()

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("shift", "state"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, D = x.shape
        H, N = self.n_heads, self.head_dim
        delta = token_shift(x, None if cache is None else cache["shift"]) - x  # (B, T, D)
        xr, xw, xk, xv, xa, xg = (x + delta * self.mix[name] for name in "rwkvag")

        r, k, v = self.receptance(xr), self.key(xk), self.value(xv)  # (B, T, D) each
        # decay w = exp(-e^{-0.5} sigmoid(d)) in (e^{-0.61}, 1): never a full reset, never exactly 1
        d = self.w0 + torch.tanh(xw @ self.w1) @ self.w2
        decay = torch.exp(-math.exp(-0.5) * torch.sigmoid(d))
        a = torch.sigmoid(self.a0 + xa @ self.a1 @ self.a2)  # in-context learning rate in (0, 1)
        gate = torch.sigmoid(xg @ self.g1) @ self.g2
        if self.layer_id == 0:
            self.first.values = v
        else:  # value residual: interpolate towards layer 0's values
            v = v + (self.first.values - v) * torch.sigmoid(self.v0 + xv @ self.v1 @ self.v2)

        heads = (B, T, H, N)
        kappa = F.normalize((k * self.k_k).view(heads), dim=-1)  # (B, T, H, N), unit norm per head
        k = k * (1 + (a - 1) * self.k_a)  # the written key is scaled down where a is small
        state = zeros_or(cache, "state", lambda: x.new_zeros(B, H, N, N))
        inputs = (r.view(heads), decay.view(heads), k.view(heads), v.view(heads), kappa, a.view(heads), state)
        if self.mode == "chunkwise" and T > 1:
            y, state = rwkv7_chunkwise(*inputs, chunk_size=self.chunk_size)  # y (B, T, H, N)
        else:  # the recurrence (always for single-token steps)
            y, state = rwkv7_recurrence(*inputs)
        y = self.group_norm(y.reshape(B * T, D)).view(B, T, D)
        # bonus: the current token's value, weighted by how well r matches k (RWKV-4's u, per head)
        bonus = (r.view(heads) * k.view(heads) * self.r_k).sum(-1, keepdim=True) * v.view(heads)
        y = y + bonus.reshape(B, T, D)
        if cache is not None:
            cache["shift"], cache["state"] = x[:, -1], state
            cache.length += T
        return self.output(y * gate)


class ChannelMix7(nn.Module):
    """RWKV-7's channel mixing: W_v relu(W_k x')^2 with a token-shifted x' (no receptance)."""

    def __init__(self, d_model: int, d_ff: int, layer_id: int, n_layers: int):
        super().__init__()
        self.d_model, self.layer_id, self.n_layers = d_model, layer_id, n_layers
        self.mix_key = nn.Parameter(torch.zeros(d_model))
        self.key = nn.Linear(d_model, d_ff, bias=False)
        self.value = nn.Linear(d_ff, d_model, bias=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        keep = 1.0 - self.layer_id / self.n_layers
        ramp = torch.arange(self.d_model, dtype=torch.float32) / self.d_model
        self.mix_key.copy_(1.0 - ramp ** (keep**4))
        self.value.weight.zero_()

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("shift",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        if cache is not None:
            cache.check(self, x)
        k = x + (token_shift(x, None if cache is None else cache["shift"]) - x) * self.mix_key
        if cache is not None:
            cache["shift"] = x[:, -1]
            cache.length += x.shape[1]
        return self.value(torch.relu(self.key(k)).square())


# ---------------------------------------------------------------------------------------- model
class RWKVBlock(nn.Module):
    """x -> x + time_mix(norm(x)) -> x + channel_mix(norm(x)); layer 0 first norms the embeddings.

    Both halves read the previous token, so both keep a state: the block's cache holds the two."""

    def __init__(self, config: Config, layer_id: int, first: FirstLayerValues):
        super().__init__()
        c = config
        if layer_id == 0:  # RWKV norms the embeddings once before the first block
            self.pre_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.time_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.channel_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        if c.version == 4:
            self.time_mix: nn.Module = TimeMix4(c.d_model, layer_id, c.n_layers)
            self.channel_mix: nn.Module = ChannelMix4(c.d_model, c.d_ff, layer_id, c.n_layers)
        else:
            self.time_mix = TimeMix7(
                c.d_model, c.head_dim, layer_id, c.n_layers, first, mode=c.mode, chunk_size=c.chunk_size
            )
            self.channel_mix = ChannelMix7(c.d_model, c.d_ff, layer_id, c.n_layers)

    def init_cache(self, batch: int) -> Cache:
        return Cache([self.time_mix.init_cache(batch), self.channel_mix.init_cache(batch)])

    def forward(self, x: torch.Tensor, *, cache: Cache | None = None) -> torch.Tensor:
        time_cache, channel_cache = (None, None) if cache is None else cache.layers
        if hasattr(self, "pre_norm"):
            x = self.pre_norm(x)
        x = x + self.time_mix(self.time_norm(x), cache=time_cache)
        return x + self.channel_mix(self.channel_norm(x), cache=channel_cache)


@register(
    "rwkv",
    family="attention",
    config=Config,
    summary="RWKV-7 'Goose': an RNN with a generalised-delta-rule matrix state (version=4: RWKV-4).",
    paper='RWKV-7 "Goose" with Expressive Dynamic State Evolution',
    year=2025,
    arxiv="2503.14456",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, head_dim=16, d_ff=64),
    presets={
        "rwkv4_169m": Preset(
            RWKV4_169M,
            params=169_342_464,
            source="RWKV-4 Pile 169M: transformers RwkvForCausalLM from the same RwkvConfig, meta device",
        )
    },
    rules=[
        Rule(
            lambda c: c.d_model % c.head_dim == 0,
            "d_model={d_model} must be divisible by head_dim={head_dim}",
        )
    ],
    outputs="logits (B, T, vocab_size)",
)
class RWKV(CausalLM):
    def __init__(self, config: Config):
        first = FirstLayerValues()  # shared by the stack's RWKV-7 time mixes (the value residual)
        super().__init__(config, [RWKVBlock(config, i, first) for i in range(config.n_layers)])


# ----------------------------------------------- transformers RwkvForCausalLM names -> ours (RWKV-4)
# Our name -> theirs, regex rules applied in order; the token-shift mixes are (D,) here, (1, 1, D) there.
HF_RWKV_NAMES = [
    (r"^tok_embed\.", "rwkv.embeddings."),
    (r"^blocks\.(\d+)\.pre_norm\.", r"rwkv.blocks.\1.pre_ln."),
    (r"^blocks\.(\d+)\.time_norm\.", r"rwkv.blocks.\1.ln1."),
    (r"^blocks\.(\d+)\.channel_norm\.", r"rwkv.blocks.\1.ln2."),
    (r"^blocks\.(\d+)\.time_mix\.", r"rwkv.blocks.\1.attention."),
    (r"^blocks\.(\d+)\.channel_mix\.", r"rwkv.blocks.\1.feed_forward."),
    (r"^norm\.", "rwkv.ln_out."),
    (r"^lm_head\.", "head."),
]
