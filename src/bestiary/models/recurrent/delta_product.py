"""DeltaProduct: several delta-rule steps per token, so each state transition is a product of
generalized Householder transforms.

Paper: "DeltaProduct: Improving State-Tracking in Linear RNNs via Householder Products" (Siems,
Carstensen, Zela, Hutter, Pontil & Grazzi, 2025, arXiv:2502.10297).

DeltaNet's state transition per token is one generalized Householder matrix, I - beta_t k_t k_t^T:
identity plus a rank-one change. That limits what the recurrence can express (e.g. which
permutations it can track). DeltaProduct takes n_h delta steps per token, each with its own key,
value and beta projected from the same x_t:

    S <- (I - beta_{t,j} k_{t,j} k_{t,j}^T) S + beta_{t,j} k_{t,j} v_{t,j}^T     j = 1 .. n_h
    o_t = S^T q_t                                                                 (after the n_h steps)

so the transition is a product of n_h Householder-like factors (rank n_h away from identity). With
beta in (0, 2) (`allow_neg_eigval`) each factor has an eigenvalue 1 - beta in (-1, 1): negative
eigenvalues, which the paper shows state tracking needs. The n_h steps are just a sequence n_h
times longer, so the delta rule's recurrent and chunkwise forms (`bestiary.layers.delta_rule`) run
on it unchanged; the query reads only after a token's last step. `gated` adds Gated DeltaNet's
forgetting gate, applied once per token (Gated DeltaProduct).

Simplified: the short convolution runs over tokens (on all n_h keys and values of a token at
once), the output is a per-head RMSNorm without an output gate, d_k = d_v = head_dim.
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
    l2_normalize,
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
    n_householder: int = option(2, min=1)  # n_h: delta steps (Householder factors) per token
    allow_neg_eigval: bool = False  # beta in (0, 2) instead of (0, 1): eigenvalues in (-1, 1)
    gated: bool = False  # a Mamba-2-style forgetting gate per token (Gated DeltaProduct)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    mode: str = option("chunkwise", choices=MODES)  # both give the same outputs; decoding steps are recurrent
    chunk_size: int = option(64, min=1)  # delta steps (not tokens) per chunk of the chunkwise form
    tie_embeddings: bool = True


class DeltaProductMixer(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). Cache: the conv window and the memory S (B, H, d_k, d_v)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads, self.n_h = c.d_model, c.n_heads, c.n_householder
        self.head_dim = c.head_dim or c.d_model // c.n_heads
        self.mode, self.chunk_size = c.mode, c.chunk_size
        self.beta_scale = 2.0 if c.allow_neg_eigval else 1.0
        inner = self.n_heads * self.head_dim
        self.q_proj = nn.Linear(c.d_model, inner, bias=False)
        self.k_proj = nn.Linear(c.d_model, self.n_h * inner, bias=False)  # n_h keys per token
        self.v_proj = nn.Linear(c.d_model, self.n_h * inner, bias=False)  # n_h values per token
        self.b_proj = nn.Linear(c.d_model, self.n_h * self.n_heads, bias=False)  # n_h betas per head
        self.gated = c.gated
        if c.gated:
            self.a_proj = nn.Linear(c.d_model, self.n_heads, bias=False)
            self.A_log = nn.Parameter(torch.zeros(self.n_heads))
            self.dt_bias = nn.Parameter(torch.zeros(self.n_heads))
        self.conv = ShortConv((1 + 2 * self.n_h) * inner, c.kernel_size)  # on q | keys | values
        self.out_norm = GatedRMSNorm(self.head_dim, c.norm_eps)
        self.out_proj = nn.Linear(inner, c.d_model, bias=False)

    def init_weights(self) -> None:
        if self.gated:  # Mamba-2's: A ~ U(1, 16), time steps log-uniform in [1e-3, 0.1]
            init_mamba2_decay(self.A_log, self.dt_bias)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "memory"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H, d, n_h = self.n_heads, self.head_dim, self.n_h
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)  # (B, T, (1 + 2 n_h) H d)
        qkv, window = self.conv(qkv, None if cache is None else cache["conv"])
        q, k, v = qkv.split([H * d, n_h * H * d, n_h * H * d], dim=-1)
        # unroll the n_h steps of each token into a sequence n_h times longer: (B, T n_h, H, d)
        k = l2_normalize(k.reshape(B, T * n_h, H, d))
        v = v.reshape(B, T * n_h, H, d)
        beta = self.beta_scale * torch.sigmoid(self.b_proj(x)).reshape(B, T * n_h, H)
        # the query reads after each token's last step; the other steps' outputs are dropped
        q = l2_normalize(q.view(B, T, 1, H, d)) * d**-0.5
        q = F.pad(q, (0, 0, 0, 0, n_h - 1, 0)).reshape(B, T * n_h, H, d)  # zeros before the last step
        log_decay = None
        if self.gated:  # forget once per token, before its first step
            g = -self.A_log.exp() * F.softplus(self.a_proj(x) + self.dt_bias)  # (B, T, H)
            log_decay = F.pad(g.unsqueeze(2), (0, 0, 0, n_h - 1)).reshape(B, T * n_h, H)
        memory = None if cache is None else cache["memory"]
        o, memory = delta_rule(q, k, v, beta, log_decay, memory, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["memory"] = window, memory
            cache.length += T
        o = o.view(B, T, n_h, H, d)[:, :, -1]  # (B, T, H, d): the read after the last step
        return self.out_proj(self.out_norm(o).reshape(B, T, -1))


@register(
    "delta_product",
    family="recurrent",
    config=Config,
    summary="n_h delta-rule steps per token: state transitions that are products of Householder transforms.",
    paper="DeltaProduct: Improving State-Tracking in Linear RNNs via Householder Products",
    year=2025,
    arxiv="2502.10297",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class DeltaProduct(CausalLM):
    def __init__(self, config: Config):
        blocks = prenorm_blocks(config, lambda _: DeltaProductMixer(config), mlp=config.mlp, norm=config.norm)
        super().__init__(config, blocks)
