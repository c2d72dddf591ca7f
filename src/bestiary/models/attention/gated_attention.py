"""Gated attention: a sigmoid gate on each head's output, right after scaled dot-product attention.

Paper: "Gated Attention for Large Language Models: Non-linearity, Sparsity, and Attention-Sink-Free"
(Zihan Qiu et al., Qwen team, 2025, arXiv:2505.06708);
the attention layers of Qwen3-Next use it.

Of the gate positions the paper compares, the best is G1: after SDPA, before the output projection,
    y = W_O (SDPA(q, k, v) * sigmoid(W_g x))
one gate per head and channel (`gate="elementwise"`, Qwen3-Next's; `gate="headwise"`: one scalar per
head, nearly as good with far fewer parameters), computed from the same (normed) input as the query.
Two effects:
W_V and W_O are otherwise two linear maps in a row (a low-rank product); the gate puts a
non-linearity between them. And the gate is sparse (mostly near 0), input-dependent: a head can
output nothing for a token, so it no longer needs to park its softmax mass on the first token (the
"attention sink"), and massive activations disappear. Qwen3-Next also RMS-normalises q and k per
head before RoPE (QK-norm, for stable logits).

Simplified: RoPE on the whole head (Qwen3-Next rotates a quarter of it, partial_rotary_factor 0.25);
Qwen3-Next's q_proj emits query and gate interleaved per head, ours keeps `gate_proj` separate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import KVCache, MultiHeadAttention, RMSNorm, RotaryEmbedding
from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_shape
from bestiary.layers.positions import apply_rotary
from bestiary.options import option
from bestiary.registry import register


class GatedAttention(MultiHeadAttention):
    """Causal GQA with QK-norm and an elementwise sigmoid output gate (the paper's G1 position).

    MultiHeadAttention's projections, RoPE and KVCache; adds `gate_proj` (d_model -> H * head_dim,
    or H with gate="headwise") and `q_norm`, `k_norm` (RMSNorm over head_dim, shared by the heads)."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        rope: RotaryEmbedding,
        norm_eps: float = 1e-6,
        gate: str = "elementwise",
        **kwargs,
    ):
        super().__init__(d_model, n_heads, causal=True, rope=rope, bias=False, **kwargs)
        if gate not in ("elementwise", "headwise"):
            raise ValueError(f"gate must be 'elementwise' or 'headwise', got {gate!r}")
        gates_per_head = 1 if gate == "headwise" else self.head_dim
        self.gate_proj = nn.Linear(d_model, n_heads * gates_per_head, bias=False)
        self.q_norm = RMSNorm(self.head_dim, norm_eps)
        self.k_norm = RMSNorm(self.head_dim, norm_eps)

    def forward(
        self, x: torch.Tensor, *, cache: KVCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        check_shape(x, "B T D", name="x", D=self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q, k, v = self._project_qkv(x)
        q = self.q_norm(self._split_heads(q, self.n_heads))  # (B, H, T, Dh), each head RMS-normed
        k = self.k_norm(self._split_heads(k, self.n_kv_heads))  # (B, Hkv, T, Dh)
        v = self._split_heads(v, self.n_kv_heads)
        cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, start + T, Dh)
        heads = scaled_dot_product_attention(q, k, v, mask, is_causal=True, manual=self.manual)
        heads = heads.transpose(1, 2)  # (B, T, H, Dh)
        # the gate reads this token's own input: (B, T, H, Dh), or (B, T, H, 1) headwise
        gate = torch.sigmoid(self.gate_proj(x)).view(B, T, self.n_heads, -1)
        return self.out_proj((heads * gate).reshape(B, T, self.n_heads * self.head_dim))  # (B, T, H*Dh)


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2
    head_dim: int | None = None
    d_ff: int = 352
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    gate: str = option(
        "elementwise", choices=("elementwise", "headwise")
    )  # one gate per channel, or per head
    tie_embeddings: bool = True


@register(
    "gated_attention",
    family="attention",
    config=Config,
    summary="Attention with a per-head, per-channel sigmoid gate after SDPA and QK-norm (Qwen3-Next).",
    paper="Gated Attention for Large Language Models: Non-linearity, Sparsity, and Attention-Sink-Free",
    year=2025,
    arxiv="2505.06708",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class GatedAttentionLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        head_dim = c.head_dim or c.d_model // c.n_heads
        rope = RotaryEmbedding(head_dim, c.rope_theta)
        blocks = prenorm_blocks(
            c,
            lambda _: GatedAttention(
                c.d_model,
                c.n_heads,
                n_kv_heads=c.n_kv_heads,
                head_dim=c.head_dim,
                rope=rope,
                norm_eps=c.norm_eps,
            ),
        )
        super().__init__(config, blocks)


def weights_from_qwen3_next(
    hf: Mapping[str, torch.Tensor], n_heads: int, head_dim: int
) -> dict[str, torch.Tensor]:
    """A transformers Qwen3NextAttention state dict -> a GatedAttention one.

    Qwen3-Next's q_proj emits, head after head, the query then the gate: (H * 2 * Dh, D) rows are
    split into our q_proj and gate_proj. Its RMSNorms scale by (1 + weight) (zero at init), ours by
    weight: 1 is added."""
    query_rows, gate_rows = hf["q_proj.weight"].view(n_heads, 2, head_dim, -1).unbind(1)  # (H, Dh, D) each
    return {
        "q_proj.weight": query_rows.reshape(n_heads * head_dim, -1),
        "gate_proj.weight": gate_rows.reshape(n_heads * head_dim, -1),
        "k_proj.weight": hf["k_proj.weight"],
        "v_proj.weight": hf["v_proj.weight"],
        "out_proj.weight": hf["o_proj.weight"],
        "q_norm.weight": 1 + hf["q_norm.weight"],
        "k_norm.weight": 1 + hf["k_norm.weight"],
    }
