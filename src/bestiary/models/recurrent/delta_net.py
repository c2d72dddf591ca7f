"""DeltaNet: linear attention whose fast-weight memory is updated by the delta rule.

Papers: "Linear Transformers Are Secretly Fast Weight Programmers" (Schlag, Irie & Schmidhuber,
2021, arXiv:2102.11174) and "Parallelizing Linear Transformers with the Delta Rule over Sequence
Length" (Yang, Wang, Zhang, Shen & Kim, 2024, arXiv:2406.06484).

Linear attention is a fast-weight programmer: a matrix memory S that every token writes k_t v_t^T
into and every query reads (o_t = S_t^T q_t). Purely additive writes never remove anything, so the
memory saturates. The delta rule writes the *error* instead: S_t = S_{t-1} + beta_t k_t (v_t -
S_{t-1}^T k_t)^T, one step of online regression of v on k with step size beta_t in (0, 1). Yang et
al. made it trainable at scale with a chunkwise form (the UT transform, `bestiary.layers.
delta_rule`) and gave the layer used here: q, k, v projections, a short causal convolution and SiLU
on each, L2-normalised q and k (so the step is stable), a sigmoid beta per head, a per-head
RMSNorm on the output. Blocks are Llama-style: the mixer, then a SwiGLU MLP.

Simplified: no output gate (the paper's default layer has none either), d_k = d_v = head_dim.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.delta_rule import (
    MODES,
    GatedRMSNorm,
    ShortConv,
    delta_rule,
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


class DeltaNetMixer(nn.Module):
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
        self.b_proj = nn.Linear(c.d_model, self.n_heads, bias=False)  # beta_t: the write strength per head
        self.conv = ShortConv(
            3 * inner, c.kernel_size
        )  # on q | k | v together (depthwise: the same as three)
        self.out_norm = GatedRMSNorm(self.head_dim, c.norm_eps)
        self.out_proj = nn.Linear(inner, c.d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("conv", "memory"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v, window = short_conv_qkv(self, x, None if cache is None else cache["conv"])  # (B, T, H, D)
        beta = torch.sigmoid(self.b_proj(x))  # (B, T, H)
        memory = None if cache is None else cache["memory"]
        o, memory = delta_rule(q, k, v, beta, None, memory, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["memory"] = window, memory
            cache.length += T
        o = self.out_norm(o)  # (B, T, H, D)
        return self.out_proj(o.reshape(B, T, -1))


@register(
    "delta_net",
    family="recurrent",
    config=Config,
    summary="Linear attention with a delta-rule fast-weight memory (chunkwise UT-transform form).",
    paper="Parallelizing Linear Transformers with the Delta Rule over Sequence Length",
    year=2024,
    arxiv="2406.06484",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class DeltaNet(CausalLM):
    def __init__(self, config: Config):
        blocks = prenorm_blocks(config, lambda _: DeltaNetMixer(config), mlp=config.mlp, norm=config.norm)
        super().__init__(config, blocks)
