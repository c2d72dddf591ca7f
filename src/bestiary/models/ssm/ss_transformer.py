"""State Space Transformer (SPADE): local attention everywhere, plus a state-space model in the
bottom layer for the global view.

Paper: "Efficient Long Sequence Modeling via State Space Augmented Transformer" (Zuo, Liu, Jiao,
Charles, Manavoglu, Zhao & Gao, 2022, arXiv:2212.08136). SPADE = State sPace AugmenteD TransformEr.

Local (windowed) attention is cheap, O(T w), and good at fine-grained, nearby detail, but no
position sees past its window. An SSM is the opposite: a summary of the whole past in O(T log T),
but coarse. SPADE puts both in the bottom layer, side by side on the same input,

    y = Linear([ LocalAttention(x) ; GELU(SSM(x)) ])        (B, T, 2D) -> (B, T, D)

so every higher layer (local attention only) starts from states that already carry global
information. Decoding: the SSM runs as a recurrence (fixed-size state); the attention keeps a KV
cache.

Simplified: the SSM is S4D (diagonal, ZOH, S4D-Lin init) rather than S4; local attention is a
causal sliding window (the paper also tries chunked attention); no positional encoding (the bottom
SSM's output carries order).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.ssm_kernels import DiagonalSSM
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_265
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    mlp: str = "gelu"
    d_state: int = 64  # the bottom SSM's state size (N/2 complex pairs)
    window: int = option(128, min=1)  # local attention: each position sees itself and window - 1 before
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    mode: str = option("convolution", choices=("convolution", "recurrent"))  # of the SSM


class SPADECache:
    """The bottom mixer's cache: the attention's KV cache and the SSM's state."""

    def __init__(self, attention: KVCache, ssm: RecurrentState):
        self.attention, self.ssm = attention, ssm

    @property
    def length(self) -> int:
        return self.ssm.length

    def __len__(self) -> int:
        return self.length

    def nbytes(self) -> int:
        return self.attention.nbytes() + self.ssm.nbytes()


class SPADEMixer(nn.Module):
    """Local attention and an SSM on the same input, concatenated and projected back to D."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.mode = c.d_model, c.mode
        self.attention = MultiHeadAttention(
            c.d_model, c.n_heads, causal=True, window=c.window, dropout=c.dropout
        )
        self.ssm = DiagonalSSM(c.d_model, c.d_state, init="lin")
        self.merge = nn.Linear(2 * c.d_model, c.d_model)

    def init_cache(self, batch: int) -> SPADECache:
        return SPADECache(self.attention.init_cache(batch), RecurrentState(self, batch, ("h",)))

    def forward(self, x: torch.Tensor, *, cache: SPADECache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is None:
            local = self.attention(x)
            global_, _ = self.ssm(x, mode=self.mode)
        else:
            cache.ssm.check(self, x)
            local = self.attention(x, cache=cache.attention)
            mode = "recurrent" if x.shape[1] == 1 else self.mode
            global_, cache.ssm["h"] = self.ssm(x, cache.ssm["h"], mode=mode)
            cache.ssm.length += x.shape[1]
        return self.merge(torch.cat([local, F.gelu(global_)], dim=-1))


@register(
    "ss_transformer",
    family="ssm",
    config=Config,
    summary="SPADE: local-attention transformer whose bottom layer adds a state-space model for global context.",
    paper="Efficient Long Sequence Modeling via State Space Augmented Transformer",
    year=2022,
    arxiv="2212.08136",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, d_state=8, window=4),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (conjugate pairs)", ("d_state",)),
    ),
)
class SSTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config

        def block(i: int) -> Block:
            mixer = (
                SPADEMixer(c)
                if i == 0
                else MultiHeadAttention(c.d_model, c.n_heads, causal=True, window=c.window, dropout=c.dropout)
            )
            mlp = make_mlp(c.mlp, c.d_model, c.d_ff, dropout=c.dropout)
            return Block(c.d_model, mixer, mlp, norm=c.norm, norm_eps=c.norm_eps, dropout=c.dropout)

        super().__init__(config, [block(i) for i in range(c.n_layers)])
