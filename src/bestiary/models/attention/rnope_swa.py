"""RNoPE-SWA: RoPE with sliding-window attention, interleaved with full attention that has no
position encoding at all (NoPE).

Paper: "Rope to Nope and Back Again: A New Hybrid Attention Strategy" (Yang, Venkitesh, Talupuru
et al., Cohere, 2025, arXiv:2501.18795); the layer pattern of Command A and Llama 4's "iRoPE".

Two observations motivate it. RoPE layers are good at local, position-sensitive patterns, but
their attention to far tokens decays and they fail past their training length. NoPE layers (causal
attention, no positions: the causal mask alone lets a model infer order) retrieve from anywhere
with no recency bias, which is what long-context recall needs. So: three of every four layers
use RoPE over a sliding window, the fourth is full attention without RoPE. Only the NoPE layers
need the whole context, and they have nothing to extrapolate. (A window makes a bounded KV cache
possible; `MultiHeadAttention`'s cache still keeps every position and masks the old ones.)

Layer i is a NoPE full-attention layer when (i + 1) % nope_every == 0, as in transformers'
Cohere2 (Command R7B / Command A, `sliding_window_pattern` 4) and Llama 4 (`no_rope_layer_interval`
4), checked in the tests. (Llama 4 also chunks its RoPE layers' attention instead of sliding a
window, and Command A runs attention and MLP in parallel; both are left out.)
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import transformer_block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 352
    max_seq_len: int = 2048
    sliding_window: int = option(128, min=1)  # the RoPE layers' span
    nope_every: int = option(4, min=1)  # layer i is full NoPE attention when (i + 1) % nope_every == 0
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def layer_kinds(n_layers: int, nope_every: int) -> list[str]:
    """'rope_swa' or 'nope_full' for each layer."""
    return ["nope_full" if (i + 1) % nope_every == 0 else "rope_swa" for i in range(n_layers)]


@register(
    "rnope_swa",
    family="attention",
    config=Config,
    summary="RNoPE-SWA: sliding-window RoPE layers interleaved with full-attention NoPE layers (3:1).",
    paper="Rope to Nope and Back Again: A New Hybrid Attention Strategy",
    year=2025,
    arxiv="2501.18795",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=4,
        n_heads=4,
        n_kv_heads=2,
        d_ff=64,
        max_seq_len=64,
        sliding_window=4,
    ),
    outputs="logits (B, T, vocab_size)",
)
class RNoPESWA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        kinds = layer_kinds(c.n_layers, c.nope_every)
        blocks = [
            transformer_block(
                c.d_model,
                c.n_heads,
                c.d_ff,
                n_kv_heads=c.n_kv_heads,
                rope=rope if kind == "rope_swa" else None,
                window=c.sliding_window if kind == "rope_swa" else None,
                norm_eps=c.norm_eps,
            )
            for kind in kinds
        ]
        super().__init__(config, blocks)
        self.layer_kinds = kinds
