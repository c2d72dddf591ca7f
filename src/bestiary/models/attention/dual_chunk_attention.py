"""Dual Chunk Attention (DCA): RoPE attention over contexts longer than the pretrained length, without
training, by re-indexing positions so that no query-key distance exceeds what was seen in training.

Paper: "Training-Free Long-Context Scaling of Large Language Models" (An, Huang, Zhang et al.,
2024, arXiv:2402.17508); ChunkLlama.

A RoPE model pretrained on sequences of length c has seen relative distances 0..c-1 only. DCA cuts
the sequence into chunks of s = `chunk_size` (< c) and gives keys the position j mod s. Queries get
one of three positions depending on where the key is:

- intra-chunk (key in the query's chunk): i mod s, so the distance is the true one, i - j < s;
- successive-chunk (key in the chunk just before): min(s + i mod s, c - 1), so the first
  w = c - s queries of a chunk keep true distances to the recent keys of the previous chunk
  (locality survives the chunk boundary); the others are capped;
- inter-chunk (key in any earlier chunk): c - 1, the largest trained position, so every distance
  is in [c - s, c - 1]: far keys look "far, but trained".

Every distance stays in [0, c - 1] whatever the sequence length (tested from the position
indices). When the sequence fits in one chunk, only the intra-chunk case occurs and DCA is plain
RoPE attention (tested). Here c = chunk_size + window, with window = w the local window.

Simplified: the three score matrices are merged with one masked softmax over all keys; the paper
runs flash attention three times and merges the partial softmaxes by their log-sum-exp, which is
the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.positions import RotaryEmbedding, apply_rotary
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
    max_seq_len: int = 16384  # may exceed the pretrained length chunk_size + window
    chunk_size: int = option(3072, min=1)  # s (Llama 2 with c = 4096: s = 3/4 c)
    window: int = option(1024, min=0)  # w = c - s: successive-chunk queries keep true distances below it
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


def dca_query_positions(
    q_pos: torch.Tensor, k_pos: torch.Tensor, chunk_size: int, window: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The position each query takes against each key, and which of the three cases applies.

    q_pos (Tq,), k_pos (Tk,) absolute positions -> (position (Tq, Tk), case (Tq, Tk)) with
    case 0 intra-chunk, 1 successive-chunk, 2 inter-chunk. The key's own position is k_pos mod s."""
    s, c = chunk_size, chunk_size + window
    q_chunk, k_chunk = (q_pos // s)[:, None], (k_pos // s)[None, :]
    offset = (q_pos % s)[:, None]  # (Tq, 1)
    case = torch.where(q_chunk == k_chunk, 0, torch.where(q_chunk == k_chunk + 1, 1, 2))  # (Tq, Tk)
    intra = offset.expand_as(case)
    successive = torch.clamp(offset + s, max=c - 1).expand_as(case)
    position = torch.where(case == 0, intra, torch.where(case == 1, successive, c - 1))
    return position, case


class DualChunkAttention(MultiHeadAttention):
    """Causal RoPE attention whose positions are re-indexed by chunk (intra / successive / inter)."""

    def __init__(
        self, d_model: int, n_heads: int, *, chunk_size: int, window: int, rope: RotaryEmbedding, **kwargs
    ):
        super().__init__(d_model, n_heads, causal=True, **kwargs)
        self.chunk_size, self.window, self.dca_rope = chunk_size, window, rope

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        s, c = self.chunk_size, self.chunk_size + self.window
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k = self._split_heads(k, self.n_kv_heads)  # (B, Hkv, T, Dh)
        v = self._split_heads(v, self.n_kv_heads)
        new_pos = torch.arange(start, start + T, device=x.device)
        k = apply_rotary(k, *self.dca_rope.cos_sin(new_pos % s))  # keys: position within their chunk
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, start + T, Dh)
        groups = self.n_heads // self.n_kv_heads
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)  # (B, H, Tk, Dh)
        k_pos = torch.arange(k.shape[-2], device=x.device)
        _, case = dca_query_positions(new_pos, k_pos, s, self.window)
        # the three rotations of each query, then per (query, key) the score of its case
        q_intra = apply_rotary(q, *self.dca_rope.cos_sin(new_pos % s))
        q_successive = apply_rotary(q, *self.dca_rope.cos_sin(torch.clamp(new_pos % s + s, max=c - 1)))
        q_inter = apply_rotary(q, *self.dca_rope.cos_sin(torch.full_like(new_pos, c - 1)))
        scale = self.head_dim**-0.5 if self.scale is None else self.scale
        scores = torch.stack([qr @ k.transpose(-2, -1) for qr in (q_intra, q_successive, q_inter)])
        scores = scores.gather(0, case.expand(1, B, self.n_heads, -1, -1))[0] * scale  # (B, H, T, Tk)
        causal = k_pos[None, :] <= new_pos[:, None]  # (T, Tk)
        weights = scores.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out)


@register(
    "dual_chunk_attention",
    family="attention",
    config=Config,
    summary="Dual Chunk Attention: intra-, successive- and inter-chunk RoPE positions keep distances within the trained length.",
    paper="Training-Free Long-Context Scaling of Large Language Models",
    year=2024,
    arxiv="2402.17508",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        d_ff=64,
        max_seq_len=64,
        chunk_size=4,
        window=2,
    ),
    outputs="logits (B, T, vocab_size)",
)
class DualChunkAttentionLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: DualChunkAttention(
                c.d_model,
                c.n_heads,
                chunk_size=c.chunk_size,
                window=c.window,
                rope=rope,
                n_kv_heads=c.n_kv_heads,
                bias=False,
            ),
        )
        super().__init__(config, blocks)
