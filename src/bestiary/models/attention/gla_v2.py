"""GLA v2: gated linear attention with decoupled forget and input gates, a short convolution on the
values, a long-memory forget-gate initialisation and a kernel normaliser.

Source: the design the project's plans name "GLA v2" (the Elixir library Edifice, module
`Edifice.Attention.GLAv2`, citing flash-linear-attention's improvements); no paper of its own.
It builds on "Gated Linear Attention Transformers with Hardware-Efficient Training" (Yang et al.,
2023, arXiv:2312.06635, our `gla`) with four changes:

    phi(q), phi(k) = elu + 1                           positive features (a kernel normaliser exists)
    v~_t = silu(conv_4(v))_t                           a causal depthwise conv over the last 4 values
    f_t  = sigmoid(W_f x_t + b_f),  b_f = 3 at init    forget gate per key channel: ~0.95, long memory
    i_t  = silu(W_i x_t)                               input gate, decoupled from f (GLA ties none;
                                                       gated RNNs often tie i = 1 - f)
    S_t  = diag(f_t) S_{t-1} + phi(k_t) (i_t * v~_t)^T,   z_t = diag(f_t) z_{t-1} + phi(k_t)
    o_t  = phi(q_t)^T S_t / (phi(q_t)^T z_t + eps)      then GroupNorm per head and the projection

(Edifice's own code multiplies each step's k v^T by its gate and sums, which is not a decaying
state; we implement the recurrence its documentation describes.) The recurrence is the shared
gated linear attention of `bestiary.layers.linear_attention` with per-channel decay and the
normaliser riding along as an extra value column, in parallel, chunkwise and recurrent forms.
The decoding state: S and z per head, and the conv's last 3 values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache, elu_plus_one
from bestiary.layers.short_conv import CausalDepthwiseConv
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 256
    n_layers: int = 6
    n_heads: int = 4
    d_ff: int = 512  # the SwiGLU MLP (Edifice: 2 x d_model)
    kernel_size: int = 4  # the short conv on the values
    forget_bias: float = option(3.0, gt=0.0)  # b_f at init: sigmoid(3) = 0.95
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class GatedLinearAttentionV2(nn.Module):
    """(B, T, D) -> (B, T, D): normalised linear attention with per-channel forget gates, an input
    gate on convolved values, and a GroupNorm per head."""

    def __init__(self, c: Config):
        super().__init__()
        if c.d_model % c.n_heads:
            raise ValueError(f"d_model={c.d_model} must be divisible by n_heads={c.n_heads}")
        self.d_model, self.n_heads, self.head_dim = c.d_model, c.n_heads, c.d_model // c.n_heads
        self.mode, self.chunk_size, self.forget_bias = c.mode, c.chunk_size, c.forget_bias
        self.q_proj = nn.Linear(c.d_model, c.d_model)
        self.k_proj = nn.Linear(c.d_model, c.d_model)
        self.v_proj = nn.Linear(c.d_model, c.d_model)
        self.v_conv = CausalDepthwiseConv(c.d_model, c.kernel_size)
        self.forget_proj = nn.Linear(c.d_model, c.d_model)  # W_f, b_f
        self.input_proj = nn.Linear(c.d_model, c.d_model)  # W_i
        self.group_norm = nn.GroupNorm(c.n_heads, c.d_model)  # one group per head
        self.out_proj = nn.Linear(c.d_model, c.d_model)

    def init_weights(self) -> None:
        nn.init.constant_(self.forget_proj.bias, self.forget_bias)  # start remembering ~20 steps

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("state", "conv"))

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k = elu_plus_one(self.q_proj(x)), elu_plus_one(self.k_proj(x))  # (B, T, D), positive
        v, conv_past = self.v_conv(self.v_proj(x), None if cache is None else cache["conv"])
        v = F.silu(v) * F.silu(self.input_proj(x))  # convolved values, times the input gate
        log_forget = F.logsigmoid(self.forget_proj(x))  # (B, T, D): log f_t, one per key channel
        out = attend_with_cache(
            self,
            self.heads(q),
            self.heads(k),
            self.heads(v),
            self.heads(log_forget),
            cache,
            mode=self.mode,
            chunk_size=self.chunk_size,
            normalize=True,
        )  # (B, H, T, Dh)
        if cache is not None:
            cache["conv"] = conv_past
            cache.length += T
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, D)
        # per position: GroupNorm on (N, C) normalises each head's channels, never across time
        out = self.group_norm(out.reshape(B * T, self.d_model)).view(B, T, self.d_model)
        return self.out_proj(out)


@register(
    "gla_v2",
    family="attention",
    config=Config,
    summary="GLA v2: normalised gated linear attention with decoupled forget/input gates and a short conv on values.",
    paper="GLA v2 (Edifice / flash-linear-attention improvements to Gated Linear Attention); no paper",
    year=None,
    arxiv=None,
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class GLAv2(CausalLM):
    def __init__(self, config: Config):
        c = config
        super().__init__(config, prenorm_blocks(c, lambda _: GatedLinearAttentionV2(c), norm=c.norm))
