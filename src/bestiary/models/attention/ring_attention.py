"""Ring Attention: exact attention computed block by block, with key/value blocks passed around a
ring of devices, so that the context can grow with the number of devices.

Paper: "Ring Attention with Blockwise Transformers for Near-Infinite Context" (Liu, Zaharia &
Abbeel, 2023, arXiv:2310.01889). The machinery (the online softmax and the ring of send/receive
steps) is `bestiary.layers.ring_attention`; tests/models/attention/test_ring_attention.py runs it
on two real processes (torchrun, Gloo) and checks it against full attention in one.

This model is a Llama-style decoder whose attention, when reading a sequence from scratch, runs
`blockwise_attention`: the arithmetic of the ring in one process, one `chunk_size` block of keys
at a time, never building the (T x T) score matrix. It equals ordinary softmax attention
(checked), so a model trained this way and a model trained with SDPA are interchangeable.
Decoding with a KV cache attends as usual (one query row needs no blocking). Splitting a
sequence across processes inside the full model (sequence parallelism) is not wired in here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.ring_attention import blockwise_attention
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2
    d_ff: int = 352
    max_seq_len: int = 4096
    chunk_size: int = option(64, min=1)  # keys (and queries) per block: one device's share in the ring
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


class BlockwiseAttention(MultiHeadAttention):
    """Causal multi-head attention whose prefill runs the online softmax block by block."""

    def __init__(self, d_model: int, n_heads: int, *, block_size: int, **kwargs):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.block_size = block_size

    def _attend(self, q, k, v, mask, start):
        if mask is not None or q.shape[-2] != k.shape[-2]:  # padding, or decoding after a cache
            return super()._attend(q, k, v, mask, start)
        B, _, T, _ = q.shape
        groups = self.n_heads // self.n_kv_heads  # grouped-query heads share a key/value head
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, T, Dh)
        out = blockwise_attention(q, k, v, block_size=self.block_size, causal=True)  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))


@register(
    "ring_attention",
    family="attention",
    config=Config,
    summary="Ring Attention: exact blockwise attention with an online softmax; K/V blocks passed around a ring of devices.",
    paper="Ring Attention with Blockwise Transformers for Near-Infinite Context",
    year=2023,
    arxiv="2310.01889",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64, chunk_size=3
    ),
    outputs="logits (B, T, vocab_size)",
)
class RingAttentionLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: BlockwiseAttention(
                c.d_model,
                c.n_heads,
                block_size=c.chunk_size,
                n_kv_heads=c.n_kv_heads,
                bias=False,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)
