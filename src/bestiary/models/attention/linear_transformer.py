"""Linear Transformer: causal attention as an RNN with a matrix state.

Paper: "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention"
(Katharopoulos, Vyas, Pappas & Fleuret, 2020, arXiv:2006.16236).

Softmax attention weighs value v_s by exp(q_t . k_s) / sum_s' exp(q_t . k_s'). Replace the
exponential by a kernel phi(q) . phi(k) with phi(x) = elu(x) + 1 (positive, so weights stay
positive) and the causal sum factors through a running state:

    o_t = phi(q_t)^T S_t / phi(q_t)^T z_t,    S_t = S_{t-1} + phi(k_t) v_t^T,  z_t = z_{t-1} + phi(k_t)

Cost O(T d^2) instead of O(T^2 d), and decoding keeps S and z (d x d per head) instead of every
past key and value. The three equivalent forms (parallel, chunkwise, recurrent) are
`bestiary.layers.linear_attention`; the normaliser z rides along as a column of ones in v.

Simplified: pre-norm RMSNorm blocks with a GELU MLP (the paper used post-norm transformer
blocks); no position encoding (the causal sum is already order-aware, as in the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache, elu_plus_one
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 512
    n_layers: int = 6
    n_heads: int = 8
    d_ff: int = 2048
    mlp: str = "gelu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)  # three forms of the same outputs
    chunk_size: int = option(64, min=1)


class LinearAttention(nn.Module):
    """Causal linear attention with phi = elu + 1 and the normaliser. (B, T, D) -> (B, T, D)."""

    def __init__(self, d_model: int, n_heads: int, mode: str = "chunkwise", chunk_size: int = 64):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.mode, self.chunk_size = mode, chunk_size
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """S and z together: (B, H, head_dim, head_dim + 1)."""
        return RecurrentState(self, batch, ("state",))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, Dh)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        q = elu_plus_one(self._heads(self.q_proj(x)))  # (B, H, T, Dh), positive features
        k = elu_plus_one(self._heads(self.k_proj(x)))
        v = self._heads(self.v_proj(x))
        out = attend_with_cache(
            self, q, k, v, None, cache, mode=self.mode, chunk_size=self.chunk_size, normalize=True
        )  # (B, H, T, Dh)
        if cache is not None:
            cache.length += x.shape[1]
        B, T, _ = x.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))  # (B, T, D)


@register(
    "linear_transformer",
    family="attention",
    config=Config,
    summary="Causal linear attention (phi = elu + 1) with a normaliser: a transformer that decodes as an RNN.",
    paper="Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention",
    year=2020,
    arxiv="2006.16236",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class LinearTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c, lambda _: LinearAttention(c.d_model, c.n_heads, c.mode, c.chunk_size), mlp=c.mlp, norm=c.norm
        )
        super().__init__(c, blocks)
