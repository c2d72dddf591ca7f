"""Softpick: a Llama-style language model whose attention uses the rectified Softpick normaliser.

Paper: "Softpick: No Attention Sink, No Massive Activations with Rectified Softmax" (Zuhri, Fuadi,
Aji, 2025, arXiv:2504.20966).

Softmax weights are positive and sum to one, so a head with nothing to look at must still put its
weight somewhere: trained models park it on the first token (the "attention sink"), which grows
huge activations there. Softpick replaces softmax(z)_i by
    relu(e^z_i - 1) / (sum_j |e^z_j - 1| + eps)
A score <= 0 gets exactly zero weight (sparse), the weights sum to at most one, and a head whose
scores are all <= 0 outputs zero. The absolute value in the denominator keeps negative scores in the
normalisation, so their gradient is not zero (unlike relu alone).

Simplified: nothing beyond the normaliser (`bestiary.layers.attention_variants.softpick`, written
with a max-shift for stability); eps = 1e-6.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.attention_variants import Softpick, normalised_attention_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.registry import register


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
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "softpick",
    family="attention",
    config=Config,
    summary="Attention LM with Softpick, relu(e^z - 1) / sum|e^z - 1|: sparse, not sum-to-one, no attention sink.",
    paper="Softpick: No Attention Sink, No Massive Activations with Rectified Softmax",
    year=2025,
    arxiv="2504.20966",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class SoftpickLM(CausalLM):
    def __init__(self, config: Config):
        super().__init__(config, normalised_attention_blocks(config, Softpick))
