"""Log-Linear Attention: linear attention whose single state becomes O(log T) states, one per
level of a Fenwick-tree partition of the past.

Paper: "Log-Linear Attention" (Guo, Yang, Goel, Xing, Dao & Kim, 2025, arXiv:2506.04761).

Linear attention (and Mamba-2) compress the whole prefix into one matrix state: the model cannot
treat a token from long ago differently from a recent one except through the decay. Log-linear
attention splits the prefix [0, t] into buckets whose sizes are powers of two, growing with the
distance (the Fenwick / binary-counter partition): position s falls in bucket

    level(t, s) = 0 if s = t, else bit_length(t XOR s)   (1 + the highest bit where t and s differ)

so bucket l holds 2^(l-1) positions, and there are at most log2(T) + 1 of them. Each bucket keeps
its own state S^(l), and the query mixes them with data-dependent weights lambda_t^(l):

    o_t = sum_l lambda_t^(l) q_t^T S_t^(l)            parallel: O = ((Q K^T) ⊙ D ⊙ H) V,
                                                      H_ts = lambda_t^(level(t, s)), D the decay

Decoding keeps log2(max_seq_len) + 1 states and updates them like a binary counter: at position
p, levels 0 .. ctz(p) merge into level ctz(p) + 1, every state decays, and the new k_p v_p^T is
level 0. Here the base is Mamba-2-style linear attention (scalar data-dependent decay per head),
the paper's "Log-Linear Mamba-2"; the output is RMS-normed and swish-gated.

Simplified: two forms only, `parallel` (the masked O(T^2) matrix above) and `recurrent` (the
Fenwick states); the paper's chunkwise O(T log T) training algorithm is not implemented. No
short convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 2048
    mlp: str = "swiglu"
    max_seq_len: int = 4096  # fixes the number of levels: bit_length(max_seq_len - 1) + 1
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("parallel", choices=("parallel", "recurrent"))


def fenwick_levels(length: int, device: torch.device | None = None) -> torch.Tensor:
    """level(t, s) for t, s < length: 0 on the diagonal, bit_length(t XOR s) below it, -1 above
    (the future). (T, T) long."""
    t = torch.arange(length, device=device)
    xor = t[:, None] ^ t[None, :]  # (T, T)
    bit_length = torch.where(xor > 0, torch.floor(torch.log2(xor.clamp_min(1).double())).long() + 1, 0)
    return torch.where(t[None, :] <= t[:, None], bit_length, -1)


class LogLinearAttention(nn.Module):
    """(B, T, D) -> (B, T, D): decayed linear attention over Fenwick buckets with per-level weights."""

    def __init__(
        self, d_model: int, n_heads: int, max_seq_len: int, norm_eps: float = 1e-6, mode: str = "parallel"
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.n_levels = (max_seq_len - 1).bit_length() + 1
        self.mode = mode
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.decay_proj = nn.Linear(d_model, n_heads, bias=True)  # log a_t = logsigmoid(.), per head
        self.level_proj = nn.Linear(d_model, n_heads * self.n_levels, bias=True)  # lambda_t^(l)
        self.gate_proj = nn.Linear(d_model, d_model, bias=False)
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_weights(self) -> None:
        nn.init.constant_(self.decay_proj.bias, 3.0)  # a ~ 0.95: start with long memory

    def init_cache(self, batch: int) -> RecurrentState:
        """One state per level, (B, H, n_levels, head_dim, head_dim): O(log max_seq_len) memory."""
        return RecurrentState(self, batch, ("states",))

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        B, T, _ = x.shape
        H, Dh = self.n_heads, self.head_dim
        q, k, v = self.qkv_proj(x).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, Dh) each
        log_a = F.logsigmoid(self.decay_proj(x)).transpose(1, 2)  # (B, H, T)
        lam = F.softplus(self.level_proj(x)).view(B, T, H, self.n_levels).transpose(1, 2)  # (B, H, T, L)
        return q * Dh**-0.5, k, v, log_a, lam

    def _parallel(self, q, k, v, log_a, lam) -> torch.Tensor:
        """((Q K^T) ⊙ D ⊙ H) V: the hierarchical mask H_ts = lambda_t^(level(t, s))."""
        T = q.shape[2]
        levels = fenwick_levels(T, q.device)  # (T, T)
        G = torch.cumsum(log_a, dim=-1)  # (B, H, T)
        causal = levels >= 0
        decay = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()  # (B, H, T, T)
        index = levels.clamp_min(0).expand(*lam.shape[:2], T, T)  # (B, H, T, T)
        weights = torch.gather(lam, -1, index) * causal  # (B, H, T, T): lambda_t at s's level
        return ((q @ k.transpose(-1, -2)) * decay * weights) @ v

    def _recurrent(self, q, k, v, log_a, lam, states: torch.Tensor | None, start: int):
        """The binary-counter update of the Fenwick states, one position at a time."""
        B, H, T, Dh = q.shape
        if states is None:
            states = q.new_zeros(B, H, self.n_levels, Dh, Dh)
        outputs = []
        for t in range(T):
            p = start + t  # absolute position
            if p > 0:  # levels 0 .. ctz(p) join level ctz(p) + 1: {p-1} and its buckets are now one
                carry = (p & -p).bit_length() - 1  # count of trailing zeros of p
                merged = states[:, :, : carry + 2].sum(dim=2, keepdim=True)  # (B, H, 1, Dh, Dh)
                empty = states[:, :, : carry + 1].new_zeros(B, H, carry + 1, Dh, Dh)
                states = torch.cat([empty, merged, states[:, :, carry + 2 :]], dim=2)
            states = log_a[:, :, t, None, None, None].exp() * states  # every bucket decays
            new = k[:, :, t, :, None] * v[:, :, t, None, :]  # (B, H, Dh, Dh)
            states = torch.cat([new[:, :, None], states[:, :, 1:]], dim=2)  # level 0 = {p}
            per_level = torch.einsum("bhd,bhlde->bhle", q[:, :, t], states)  # (B, H, L, Dh)
            outputs.append((lam[:, :, t, :, None] * per_level).sum(dim=2))
        return torch.stack(outputs, dim=2), states  # (B, H, T, Dh)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v, log_a, lam = self._project(x)
        if cache is None and self.mode == "parallel":
            out = self._parallel(q, k, v, log_a, lam)
        else:  # with a cache the Fenwick states are needed: the recurrence produces them
            start = 0 if cache is None else cache.length
            out, states = self._recurrent(
                q, k, v, log_a, lam, None if cache is None else cache["states"], start
            )
            if cache is not None:
                cache["states"] = states
                cache.length += T
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, H*Dh)
        return self.out_proj(self.norm(out) * F.silu(self.gate_proj(x)))


@register(
    "log_linear",
    family="attention",
    config=Config,
    summary="Log-linear attention: Fenwick-tree buckets of the past, O(log T) states mixed per query.",
    paper="Log-Linear Attention",
    year=2025,
    arxiv="2506.04761",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class LogLinear(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: LogLinearAttention(c.d_model, c.n_heads, c.max_seq_len, c.norm_eps, c.mode),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
