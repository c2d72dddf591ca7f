"""YaRN: a Llama-style language model whose RoPE is stretched to a longer context than it was
trained on.

Paper: "YaRN: Efficient Context Window Extension of Large Language Models" (Peng, Quesnelle, Fan &
Shippole, 2023, arXiv:2309.00071).

A RoPE model trained on L positions has never seen the rotation angles of positions beyond L, and
its perplexity explodes there. Position interpolation divides every position by s = new / old
length: no unseen angles, but the fast-turning pairs that tell neighbouring tokens apart get
squeezed too. YaRN interpolates only the slow pairs, leaves the fast ones alone, blends in between
("NTK-by-parts"), and sharpens attention by a temperature that grows with ln(s). The method is
`bestiary.layers.positions.YaRN`; this model is the usual pre-norm GQA + SwiGLU decoder using it,
with `original_max_seq_len` (trained) and `max_seq_len` (extended) in its config. Fine-tuning on
a few hundred steps of long text finishes the extension (the paper); without it, YaRN already
degrades far less than plain RoPE past L (lesson T08).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import transformer_block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.positions import RotaryEmbedding, YaRN
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 352
    original_max_seq_len: int = option(256, min=1)  # the context the model was (or will be) trained on
    max_seq_len: int = 1024  # the extended context: rope_scaling_factor = max_seq_len / original_max_seq_len
    rope_theta: float = 10000.0
    beta_fast: float = option(32.0, gt=0.0)  # pairs with more rotations than this over L: untouched
    beta_slow: float = option(1.0, gt=0.0)  # pairs with fewer: fully interpolated
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


RULES = (
    Rule(
        lambda c: c.max_seq_len >= c.original_max_seq_len,
        "max_seq_len (the extended context) must be >= original_max_seq_len (the trained one)",
        ("max_seq_len", "original_max_seq_len"),
    ),
    Rule(lambda c: c.beta_fast > c.beta_slow, "beta_fast must be > beta_slow", ("beta_fast", "beta_slow")),
)


@register(
    "yarn",
    family="attention",
    config=Config,
    summary="YaRN: RoPE context extension by NTK-by-parts interpolation and an attention temperature.",
    paper="YaRN: Efficient Context Window Extension of Large Language Models",
    year=2023,
    arxiv="2309.00071",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=64,
        original_max_seq_len=8,
        max_seq_len=32,
    ),
    rules=RULES,
    outputs="logits (B, T, vocab_size)",
)
class YaRNTransformer(CausalLM):
    def __init__(self, config: Config):
        c = config
        head_dim = c.d_model // c.n_heads
        yarn = YaRN(
            c.max_seq_len / c.original_max_seq_len,
            c.original_max_seq_len,
            head_dim=head_dim,
            theta=c.rope_theta,
            beta_fast=c.beta_fast,
            beta_slow=c.beta_slow,
        )
        rope = RotaryEmbedding(head_dim, c.rope_theta, scaling=yarn, attention_factor=yarn.attention_factor)
        blocks = [
            transformer_block(
                c.d_model, c.n_heads, c.d_ff, n_kv_heads=c.n_kv_heads, rope=rope, norm_eps=c.norm_eps
            )
            for _ in range(c.n_layers)
        ]
        super().__init__(config, blocks)
        self.yarn = yarn  # the frequencies and temperature in use, for inspection
