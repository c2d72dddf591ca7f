"""Sigmoid attention: a Llama-style language model whose attention weights are sigmoid(score - log n).

Paper: "Theory, Analysis, and Best Practices for Sigmoid Self-Attention" (Jason Ramapuram et al.,
2024, arXiv:2409.04431).

Softmax couples every key of a row through its normalising sum. Sigmoid attention drops the sum:
each key gets the weight sigmoid(q.k / sqrt(d) + b), independently. The paper proves such a layer is
still a universal approximator, and shows that the one thing that makes it train is the bias
b = -log(n) for sequence length n: it starts the row sums near 1 (n keys * sigmoid(-log n) ~ 1)
instead of near n / 2, which would blow up the outputs early in training. Without the row-wise
reduction, the kernel (FlashSigmoid) is faster than FlashAttention.

Simplified: n is fixed at max_seq_len (the training length), so a token's weights do not depend
on how many keys it happens to see and cached decoding matches training; the paper's LayerScale /
hybrid-norm stabilisers are left to the Block. The normaliser is
`bestiary.layers.attention_variants.sigmoid_weights`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.attention_variants import SigmoidWeights, normalised_attention_blocks
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
    max_seq_len: int = 1024  # also the n of the bias -log(n)
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "sigmoid_attention",
    family="attention",
    config=Config,
    summary="Attention LM with elementwise sigmoid(score - log n) weights instead of softmax.",
    paper="Theory, Analysis, and Best Practices for Sigmoid Self-Attention",
    year=2024,
    arxiv="2409.04431",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class SigmoidAttentionLM(CausalLM):
    def __init__(self, config: Config):
        super().__init__(
            config, normalised_attention_blocks(config, lambda: SigmoidWeights(config.max_seq_len))
        )
