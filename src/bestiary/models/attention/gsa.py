"""GSA: Gated Slot Attention, softmax attention over a small set of gated memory slots.

Paper: "Gated Slot Attention for Efficient Linear-Time Sequence Modeling" (Zhang, Yang, Zhu,
Zhang, Cui, Wang, Wang, Shi, Wang, Bi, Zhou & Fu, 2024, arXiv:2409.07146).

Instead of one key-value matrix state, GSA keeps m slots of keys and values (ABC-style bounded
memory) and writes into them with a forget gate alpha_t in (0, 1)^m, one rate per slot:

    K_t = diag(alpha_t) K_{t-1} + (1 - alpha_t) k_t^T        (m x d_k)
    V_t = diag(alpha_t) V_{t-1} + (1 - alpha_t) v_t^T        (m x d_v)
    o_t = V_t^T softmax(K_t q_t)                             (softmax over the m slots)

Each line is a gated linear attention (`bestiary.layers.linear_attention`), so GSA is two passes:
  1. scores s_t = K_t q_t: for slot j, sum_{r<=t} (q_t . k_r)(1 - alpha_rj) prod alpha_j, a linear
     attention with a scalar decay alpha_j per slot: the m slots become m "heads" sharing q and k;
  2. o_t = p_t^T V_t with p_t = softmax(s_t): a GLA with query p_t, key 1 - alpha_t (slot
     channels, decayed per channel by alpha_t) and value v_t.
The softmax in between keeps attention's sharp selection (the paper's point: better recall than
GLA at the same state size), and decoding keeps the (m x d) slot states.

Simplified: alpha_t = sigmoid(x W_alpha)^(1/tau) with tau = 8, q and k through swish, as in the
reference implementation; no short convolution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, linear_attention
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 4
    d_ff: int = 2816
    mlp: str = "swiglu"
    n_slots: int = option(64, min=1)  # m memory slots per head
    gate_temperature: float = option(8.0, gt=0.0)  # tau: alpha = sigmoid(.)^(1/tau)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class GatedSlotAttention(nn.Module):
    """(B, T, D) -> (B, T, D): two gated linear-attention passes around a softmax over slots."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        n_slots: int,
        *,
        gate_temperature: float = 8.0,
        norm_eps: float = 1e-6,
        mode: str = "chunkwise",
        chunk_size: int = 64,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim, self.n_slots = (
            d_model,
            n_heads,
            d_model // n_heads,
            n_slots,
        )
        self.gate_temperature = gate_temperature
        self.mode, self.chunk_size = mode, chunk_size
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.slot_gate = nn.Linear(d_model, n_heads * n_slots, bias=True)
        self.out_gate = nn.Linear(d_model, d_model, bias=False)
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """keys: the slot keys K, (B, H*m, head_dim, 1); values: the slot values V, (B, H, m, head_dim)."""
        return RecurrentState(self, batch, ("keys", "values"))

    def log_forget_gate(self, x: torch.Tensor) -> torch.Tensor:
        """log alpha_t = logsigmoid(x W_alpha) / tau, (B, H, T, m)."""
        B, T, _ = x.shape
        log_alpha = F.logsigmoid(self.slot_gate(x)) / self.gate_temperature  # (B, T, H*m)
        return log_alpha.view(B, T, self.n_heads, self.n_slots).transpose(1, 2)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H, m, Dh = self.n_heads, self.n_slots, self.head_dim
        q, k, v = self.qkv_proj(x).view(B, T, 3, H, Dh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, T, Dh)
        q, k = F.silu(q) * Dh**-0.5, F.silu(k)
        log_alpha = self.log_forget_gate(x)  # (B, H, T, m)
        write = -torch.expm1(log_alpha)  # 1 - alpha_t, (B, H, T, m)
        mode = "recurrent" if cache is not None and T == 1 else self.mode
        # pass 1: s_t = K_t q_t, every slot a head of its own with scalar decay alpha_j
        slot_q = q.unsqueeze(2).expand(B, H, m, T, Dh).reshape(B, H * m, T, Dh)  # (B, H*m, T, Dh)
        slot_k = k.unsqueeze(2).expand(B, H, m, T, Dh).reshape(B, H * m, T, Dh)
        slot_decay = log_alpha.permute(0, 1, 3, 2).reshape(B, H * m, T)  # (B, H*m, T)
        slot_write = write.permute(0, 1, 3, 2).reshape(B, H * m, T, 1)  # (B, H*m, T, 1)
        scores, key_state = linear_attention(
            slot_q,
            slot_k,
            slot_write,
            slot_decay,
            mode=mode,
            chunk_size=self.chunk_size,
            initial_state=None if cache is None else cache["keys"],
        )  # (B, H*m, T, 1)
        probs = scores.view(B, H, m, T).transpose(2, 3).softmax(dim=-1)  # (B, H, T, m): over the slots
        # pass 2: o_t = p_t^T V_t, a GLA over slot channels with key 1 - alpha_t
        out, value_state = linear_attention(
            probs,
            write,
            v,
            log_alpha,
            mode=mode,
            chunk_size=self.chunk_size,
            initial_state=None if cache is None else cache["values"],
        )  # (B, H, T, Dh)
        if cache is not None:
            cache["keys"], cache["values"] = key_state, value_state
            cache.length += T
        out = out.transpose(1, 2).reshape(B, T, self.d_model)
        return self.out_proj(self.norm(out) * F.silu(self.out_gate(x)))


@register(
    "gsa",
    family="attention",
    config=Config,
    summary="Gated Slot Attention: softmax over m gated key/value slots, computed as two GLA passes.",
    paper="Gated Slot Attention for Efficient Linear-Time Sequence Modeling",
    year=2024,
    arxiv="2409.07146",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, n_slots=4, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class GSA(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: GatedSlotAttention(
                c.d_model,
                c.n_heads,
                c.n_slots,
                gate_temperature=c.gate_temperature,
                norm_eps=c.norm_eps,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
