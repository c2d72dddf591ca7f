"""KDA (Kimi Delta Attention): Gated DeltaNet with one forgetting rate per key channel.

Paper: "Kimi Linear: An Expressive, Efficient Attention Architecture" (Kimi Team, 2025,
arXiv:2510.26692).

Gated DeltaNet forgets with one scalar alpha_t per head: the whole memory fades at the same rate.
KDA makes the gate a vector, one rate per key dimension, like GLA's fine-grained gates:

    S_t = diag(alpha_t) S_{t-1} + beta_t k_t (v_t - (diag(alpha_t) S_{t-1})^T k_t)^T     (keys x values)
    alpha_t = exp(-exp(A_log_h) * softplus(W_up W_down x_t + dt_bias))                  (B, H, d_k)

so some channels hold long-range facts while others turn over quickly. The chunkwise form is the
delta rule's UT transform with per-channel decays inside the within-chunk products
(`bestiary.layers.delta_rule`). Around the kernel, the Kimi Linear layer: q, k, v projections with
a short causal conv and SiLU, L2-normalised q and k, sigmoid beta per head, the decay from a
low-rank projection (d_model -> head_dim -> H * head_dim), and an output gate from another
low-rank projection: RMSNorm(o) * sigmoid(gate), per head.

Simplified: every block is KDA + MLP (Kimi Linear interleaves 3 KDA layers with 1 MLA layer and
uses MoE MLPs); d_k = d_v = head_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.delta_rule import (
    MODES,
    GatedRMSNorm,
    ShortConv,
    delta_rule,
    init_mamba2_decay,
    short_conv_qkv,
)
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    head_dim: int | None = None  # None = d_model // n_heads (keys, values, and the gates' low rank)
    d_ff: int = 352
    mlp: str = "swiglu"
    kernel_size: int = 4  # taps of the short convolution on q, k, v
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    mode: str = option("chunkwise", choices=MODES)  # both give the same outputs; decoding steps are recurrent
    chunk_size: int = option(64, min=1)  # tokens per chunk of the chunkwise form
    tie_embeddings: bool = True


class KimiDeltaAttention(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). Cache: the conv window and the memory S (B, H, d_k, d_v)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads = c.d_model, c.n_heads
        self.head_dim = d = c.head_dim or c.d_model // c.n_heads
        self.mode, self.chunk_size = c.mode, c.chunk_size
        inner = self.n_heads * d
        self.q_proj = nn.Linear(c.d_model, inner, bias=False)
        self.k_proj = nn.Linear(c.d_model, inner, bias=False)
        self.v_proj = nn.Linear(c.d_model, inner, bias=False)
        self.b_proj = nn.Linear(c.d_model, self.n_heads, bias=False)  # beta_t per head
        # the per-channel forgetting gate, through a rank-d bottleneck
        self.decay_down = nn.Linear(c.d_model, d, bias=False)
        self.decay_up = nn.Linear(d, inner, bias=False)
        self.dt_bias = nn.Parameter(torch.zeros(inner))
        self.A_log = nn.Parameter(torch.zeros(self.n_heads))  # one decay rate per head, log(A)
        # the output gate, through a rank-d bottleneck too
        self.gate_down = nn.Linear(c.d_model, d, bias=False)
        self.gate_up = nn.Linear(d, inner, bias=False)
        self.conv = ShortConv(3 * inner, c.kernel_size)  # on q | k | v together
        self.out_norm = GatedRMSNorm(d, c.norm_eps, activation="sigmoid")
        self.out_proj = nn.Linear(inner, c.d_model, bias=False)

    def init_weights(self) -> None:
        """As Mamba-2 / Gated DeltaNet: A ~ U(1, 16), time steps log-uniform in [1e-3, 0.1]."""
        init_mamba2_decay(self.A_log, self.dt_bias)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "memory"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H, d = self.n_heads, self.head_dim
        q, k, v, window = short_conv_qkv(self, x, None if cache is None else cache["conv"])  # (B, T, H, d)
        beta = torch.sigmoid(self.b_proj(x))  # (B, T, H)
        rate = F.softplus(self.decay_up(self.decay_down(x)) + self.dt_bias).view(B, T, H, d)
        log_decay = -self.A_log.exp()[:, None] * rate  # (B, T, H, d): one forgetting rate per key channel
        memory = None if cache is None else cache["memory"]
        o, memory = delta_rule(q, k, v, beta, log_decay, memory, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["memory"] = window, memory
            cache.length += T
        gate = self.gate_up(self.gate_down(x)).view(B, T, H, d)
        o = self.out_norm(o, gate)  # RMSNorm(o) * sigmoid(gate), per head
        return self.out_proj(o.reshape(B, T, -1))


@register(
    "kda",
    family="attention",
    config=Config,
    summary="Kimi Delta Attention: gated delta rule with a per-channel forgetting gate (Kimi Linear).",
    paper="Kimi Linear: An Expressive, Efficient Attention Architecture",
    year=2025,
    arxiv="2510.26692",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class KDA(CausalLM):
    def __init__(self, config: Config):
        blocks = prenorm_blocks(
            config, lambda _: KimiDeltaAttention(config), mlp=config.mlp, norm=config.norm
        )
        super().__init__(config, blocks)
