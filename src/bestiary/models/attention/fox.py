"""FoX: the Forgetting Transformer, softmax attention with a data-dependent forget gate.

Paper: "Forgetting Transformer: Softmax Attention with a Forget Gate" (Zhixuan Lin, Evgenii
Nikishin, Xu Owen He, Aaron Courville, 2025, arXiv:2503.02130).

Recurrent models (LSTM, Mamba, GLA) forget through a gate; softmax attention cannot, every past
token stays fully available. FoX gives each head a scalar forget gate per token,
f_t = sigmoid(w_f · x_t + b_f), and down-weights key j, seen from query i, by the product of the
gates in between:
    o_i = sum_j exp(q_i·k_j/sqrt(d) + D_ij) v_j / sum_j exp(q_i·k_j/sqrt(d) + D_ij),
    D_ij = sum_{l=j+1..i} log f_l = c_i - c_j,  c_i = sum_{l<=i} log f_l.
So the gate is just an additive bias on the attention logits, computed from a cumulative sum:
any attention kernel that takes a bias runs it. With all f = 1 it is plain (position-free) softmax
attention; a learned f < 1 acts as a data-dependent, ALiBi-like recency bias, which is why FoX needs
no RoPE. The cache keeps c_j for every cached key beside k and v.

Simplified: the basic FoX (Llama blocks without RoPE); the "Pro" block's output gate, QK-norm and
key/value shift are left out; the gate bias starts at 0 (f = 1/2 at init, before w_f · x).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import MultiHeadAttention
from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.attention_variants import KVExtrasCache
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.registry import register


def forgetting_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, decay_q: torch.Tensor, decay_k: torch.Tensor
) -> torch.Tensor:
    """Causal softmax attention with the forget-gate bias D_ij = c_i - c_j.

    q (B, H, T, D), k and v (B, H_kv, Tk, D), decay_q (B, H, T) and decay_k (B, H, Tk): the cumulative
    log forget gates c at the queries' and the keys' positions -> (B, H, T, D)."""
    bias = decay_q[..., :, None] - decay_k[..., None, :]  # (B, H, T, Tk): log prod of gates between j and i
    return scaled_dot_product_attention(q, k, v, is_causal=True, attn_bias=bias)


class ForgettingAttention(MultiHeadAttention):
    """Causal MultiHeadAttention (no RoPE) with a per-head forget gate `forget_proj` (d_model -> H)."""

    def __init__(self, d_model: int, n_heads: int, **kwargs):
        super().__init__(d_model, n_heads, causal=True, bias=False, **kwargs)
        self.forget_proj = nn.Linear(d_model, n_heads, bias=True)

    def init_cache(self, batch: int, **_: object) -> KVExtrasCache:
        return KVExtrasCache(("log_decay",))

    def forward(
        self, x: torch.Tensor, *, cache: KVExtrasCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        if mask is not None:
            raise ValueError("ForgettingAttention takes no padding mask")
        B, T, _ = x.shape
        q, k, v = self._project_qkv(x)
        q, k, v = (
            self._split_heads(q, self.n_heads),
            *(self._split_heads(t, self.n_kv_heads) for t in (k, v)),
        )
        log_forget = F.logsigmoid(self.forget_proj(x)).transpose(1, 2)  # (B, H, T): log f_t <= 0
        decay = log_forget.cumsum(dim=-1)  # (B, H, T): c_t, from this call's first position
        if cache is not None:
            past = cache.extras["log_decay"]
            if past is not None:  # continue the cumulative sum from the last cached position
                decay = decay + past[..., -1:, 0]
            k, v = cache.update(k, v)  # (B, H_kv, Tk, Dh)
            decay_k = cache.update_extra("log_decay", decay[..., None])[..., 0]  # (B, H, Tk)
        else:
            decay_k = decay
        heads = forgetting_attention(q, k, v, decay, decay_k)  # (B, H, T, Dh)
        return self.out_proj(heads.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None
    head_dim: int | None = None
    d_ff: int = 352
    max_seq_len: int = 1024
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "fox",
    family="attention",
    config=Config,
    summary="Forgetting Transformer: a per-head forget gate adds cumulative log-decay to the softmax logits.",
    paper="Forgetting Transformer: Softmax Attention with a Forget Gate",
    year=2025,
    arxiv="2503.02130",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class ForgettingTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: ForgettingAttention(c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim),
        )
        super().__init__(config, blocks)
