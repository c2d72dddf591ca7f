"""SSMax: a Llama-style language model whose attention uses Scalable-Softmax.

Paper: "Scalable-Softmax Is Superior for Attention" (Ken M. Nakanishi, 2025, arXiv:2501.19399).

With softmax, a query that sees n keys spreads its weight thinner as n grows: the largest weight
of a fixed score gap shrinks like 1/n, so attention "fades" on long contexts and cannot stay
focused on the one key that matters. SSMax multiplies each logit by s * log(n) before the
softmax (n: the number of keys the query sees, s: a learned scalar per head): e^(s log(n) z) =
n^(s z), which cancels the growth of the denominator, so a key whose score stands out keeps a
weight near one however long the context. A causal query at position i sees n = i + 1 keys.

Simplified: the paper's optional learned bias inside the log-scale is left out; scale s starts at
0.43 in every head. The normaliser itself is `bestiary.layers.attention_variants.ssmax`.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.attention_variants import ScalableSoftmax, normalised_attention_blocks
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
    "ssmax",
    family="attention",
    config=Config,
    summary="Attention LM with Scalable-Softmax: logits scaled by s*log(n) so attention does not fade with length.",
    paper="Scalable-Softmax Is Superior for Attention",
    year=2025,
    arxiv="2501.19399",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class SSMaxLM(CausalLM):
    def __init__(self, config: Config):
        super().__init__(config, normalised_attention_blocks(config, lambda: ScalableSoftmax(config.n_heads)))
