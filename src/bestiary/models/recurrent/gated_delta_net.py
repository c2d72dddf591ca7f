"""Gated DeltaNet: the delta rule with a Mamba-2-style forgetting gate.

Paper: "Gated Delta Networks: Improving Mamba2 with Delta Rule" (Yang, Kautz & Hatamizadeh, 2024,
arXiv:2412.06464). The linear-attention layer of Qwen3-Next.

Two ways to manage a fixed-size memory complement each other. Mamba-2's gate alpha_t in (0, 1)
erases *everything* a little at each step (fast, blunt forgetting); the delta rule replaces *one*
association precisely (S_{t-1}^T k_t -> v_t) but never forgets the rest. Gated DeltaNet does both:

    S_t = alpha_t S_{t-1} (I - beta_t k_t k_t^T) + beta_t v_t k_t^T     (values x keys, the paper's layout)
    alpha_t = exp(-exp(A_log) * softplus(a_t + dt_bias))                 (Mamba-2's decay, per head)

The chunkwise form is the delta rule's UT transform with the decays folded into the within-chunk
products (`bestiary.layers.delta_rule`). The layer follows the paper / Qwen3-Next: q, k, v
projections with a short causal conv and SiLU, L2-normalised q and k, sigmoid beta per head, and an
output gate: a per-head RMSNorm of o_t times SiLU(z_t), z_t a projection of the input.

Simplified: as many key heads as value heads and d_k = d_v = head_dim (Qwen3-Next shares each key
head between two value heads and the paper widens values 2x); all blocks are Gated DeltaNet + MLP
(the paper's hybrids with sliding-window attention and Qwen3-Next's MoE are not built here).
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
    head_dim: int | None = None  # None = d_model // n_heads (for keys and values)
    d_ff: int = 352
    mlp: str = "swiglu"
    kernel_size: int = 4  # taps of the short convolution on q, k, v
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    mode: str = option("chunkwise", choices=MODES)  # both give the same outputs; decoding steps are recurrent
    chunk_size: int = option(64, min=1)  # tokens per chunk of the chunkwise form
    tie_embeddings: bool = True


class GatedDeltaNetMixer(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). Cache: the conv window and the memory S (B, H, d_k, d_v)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads = c.d_model, c.n_heads
        self.head_dim = c.head_dim or c.d_model // c.n_heads
        self.mode, self.chunk_size = c.mode, c.chunk_size
        inner = self.n_heads * self.head_dim
        self.q_proj = nn.Linear(c.d_model, inner, bias=False)
        self.k_proj = nn.Linear(c.d_model, inner, bias=False)
        self.v_proj = nn.Linear(c.d_model, inner, bias=False)
        self.z_proj = nn.Linear(c.d_model, inner, bias=False)  # the output gate
        self.b_proj = nn.Linear(c.d_model, self.n_heads, bias=False)  # beta_t: the write strength
        self.a_proj = nn.Linear(c.d_model, self.n_heads, bias=False)  # a_t: the input of the decay
        self.A_log = nn.Parameter(torch.zeros(self.n_heads))  # decay rate per head, log(A)
        self.dt_bias = nn.Parameter(torch.zeros(self.n_heads))  # Mamba-2's time-step bias
        self.conv = ShortConv(3 * inner, c.kernel_size)  # on q | k | v together
        self.out_norm = GatedRMSNorm(self.head_dim, c.norm_eps, activation="silu")
        self.out_proj = nn.Linear(inner, c.d_model, bias=False)

    def init_weights(self) -> None:
        """Mamba-2's initialisation: A ~ U(1, 16), time steps log-uniform in [1e-3, 0.1]."""
        init_mamba2_decay(self.A_log, self.dt_bias)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "memory"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v, window = short_conv_qkv(self, x, None if cache is None else cache["conv"])  # (B, T, H, D)
        beta = torch.sigmoid(self.b_proj(x))  # (B, T, H)
        # log alpha_t = -A * dt_t <= 0: a larger time step forgets more (Mamba-2's discretisation)
        log_decay = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)  # (B, T, H)
        memory = None if cache is None else cache["memory"]
        o, memory = delta_rule(q, k, v, beta, log_decay, memory, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["memory"] = window, memory
            cache.length += T
        z = self.z_proj(x).view(B, T, self.n_heads, self.head_dim)  # (B, T, H, D)
        o = self.out_norm(o, z)  # RMSNorm(o) * SiLU(z), per head
        return self.out_proj(o.reshape(B, T, -1))


@register(
    "gated_delta_net",
    family="recurrent",
    config=Config,
    summary="Delta-rule memory with a Mamba-2 forgetting gate and an output gate (Qwen3-Next's linear layer).",
    paper="Gated Delta Networks: Improving Mamba2 with Delta Rule",
    year=2024,
    arxiv="2412.06464",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class GatedDeltaNet(CausalLM):
    def __init__(self, config: Config):
        blocks = prenorm_blocks(
            config, lambda _: GatedDeltaNetMixer(config), mlp=config.mlp, norm=config.norm
        )
        super().__init__(config, blocks)
