"""MLA: multi-head latent attention, the attention of DeepSeek-V2 and DeepSeek-V3.

Papers: "DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language Model"
(DeepSeek-AI, 2024, arXiv:2405.04434, Sec. 2.1) and "DeepSeek-V3 Technical Report" (DeepSeek-AI,
2024, arXiv:2412.19437, Sec. 2.1.1).

Grouped-query attention shrinks the KV cache by sharing heads; MLA shrinks it by compressing. Each
token's keys and values for ALL heads are rebuilt from one small latent c_kv = RMSNorm(W_DKV x)
(kv_lora_rank numbers, 512 in V3 against 128 heads * 2 * 128 for MHA): k_nope = W_UK c_kv and
v = W_UV c_kv, per head. RoPE cannot live in the latent (a rotation between W_UK and the dot
product would block the trick below), so a separate small key k_rope = RoPE(W_KR x)
(qk_rope_head_dim numbers, shared by all heads) carries the position. The cache stores only
[c_kv, k_rope]: kv_lora_rank + qk_rope_head_dim numbers per token and layer.

Decoding need not rebuild the keys: q_nope . (W_UK c) = (W_UK^T q_nope) . c, so W_UK is absorbed
into the query and attention runs in the latent space; likewise W_UV is applied after the
weighted sum of latents. `mode="absorbed"` computes that way, `mode="naive"` decompresses keys
and values first; both give the same outputs (tested). Queries go through their own low-rank
bottleneck (q_lora_rank) to save activation memory in training.

Simplified: no YaRN scaling of RoPE (V3's long-context extension), no mixture-of-experts MLP (a
dense SwiGLU in every block: V3's first three layers are dense too). RoPE uses the half-split
layout; DeepSeek's checkpoints store the rope rows interleaved (a fixed permutation of W_QR, W_KR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers import KVCache, RMSNorm, RotaryEmbedding
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.masks import causal_mask
from bestiary.layers.positions import apply_rotary
from bestiary.options import option
from bestiary.registry import Preset, register


class LatentCache(KVCache):
    """MLA's cache: per position only [c_kv, k_rope], stored in `keys` as (B, T, kv_lora_rank +
    qk_rope_head_dim); there are no per-head keys or values to store (`values` stays None)."""

    def update(self, latent: torch.Tensor, _: None = None) -> torch.Tensor:  # type: ignore[override]
        """Append the new positions' latents (B, T_new, C); return all of them (B, T, C)."""
        if self.keys is not None:
            if self.keys.shape[0] != latent.shape[0] or self.keys.shape[-1] != latent.shape[-1]:
                raise ValueError(
                    f"cached latents have shape {tuple(self.keys.shape)}, new ones {tuple(latent.shape)}"
                )
            latent = torch.cat([self.keys, latent], dim=1)  # (B, T_old + T_new, C)
        self.keys = latent
        return latent

    def crop(self, length: int) -> None:
        if self.keys is not None:
            self.keys = self.keys[:, :length]


class MultiHeadLatentAttention(nn.Module):
    """Causal MLA, x (B, T, d_model) -> (B, T, d_model), with a `LatentCache`.

    Parameter names follow the paper's matrices: q_down/q_up (W_DQ, W_UQ and W_QR stacked),
    kv_down (W_DKV and W_KR stacked), kv_up (W_UK and W_UV stacked), out_proj (W_O).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        q_lora_rank: int | None,
        kv_lora_rank: int,
        qk_nope_head_dim: int,
        qk_rope_head_dim: int,
        v_head_dim: int,
        rope: RotaryEmbedding,
        norm_eps: float = 1e-6,
        mode: str = "naive",
    ):
        super().__init__()
        if mode not in ("naive", "absorbed"):
            raise ValueError(f"mode must be 'naive' or 'absorbed', got {mode!r}")
        self.d_model, self.n_heads, self.mode = d_model, n_heads, mode
        self.kv_lora_rank, self.nope_dim, self.rope_dim, self.v_dim = (
            kv_lora_rank,
            qk_nope_head_dim,
            qk_rope_head_dim,
            v_head_dim,
        )
        self.scale = 1.0 / math.sqrt(qk_nope_head_dim + qk_rope_head_dim)
        q_out = n_heads * (qk_nope_head_dim + qk_rope_head_dim)
        if q_lora_rank is None:  # DeepSeek-V2-Lite: a plain query projection
            self.q_proj = nn.Linear(d_model, q_out, bias=False)
        else:
            self.q_down = nn.Linear(d_model, q_lora_rank, bias=False)
            self.q_norm = RMSNorm(q_lora_rank, norm_eps)
            self.q_up = nn.Linear(q_lora_rank, q_out, bias=False)
        self.kv_down = nn.Linear(d_model, kv_lora_rank + qk_rope_head_dim, bias=False)
        self.kv_norm = RMSNorm(kv_lora_rank, norm_eps)
        self.kv_up = nn.Linear(kv_lora_rank, n_heads * (qk_nope_head_dim + v_head_dim), bias=False)
        self.out_proj = nn.Linear(n_heads * v_head_dim, d_model, bias=False)
        self.rope = rope

    def init_cache(self, batch: int, **_: object) -> LatentCache:
        return LatentCache()

    def _queries(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        q = self.q_proj(x) if hasattr(self, "q_proj") else self.q_up(self.q_norm(self.q_down(x)))
        return q.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, nope + rope)

    def _up_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """W_UK (H, nope, r) and W_UV (H, v, r): kv_up's rows, head by head."""
        w = self.kv_up.weight.view(self.n_heads, self.nope_dim + self.v_dim, self.kv_lora_rank)
        return w[:, : self.nope_dim], w[:, self.nope_dim :]

    def forward(self, x: torch.Tensor, *, cache: LatentCache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        cos, sin = self.rope.cos_sin(torch.arange(start, start + T, device=x.device))
        q_nope, q_rope = self._queries(x).split([self.nope_dim, self.rope_dim], dim=-1)
        q_rope = apply_rotary(q_rope, cos, sin)  # (B, H, T, rope)
        latent, k_rope = self.kv_down(x).split([self.kv_lora_rank, self.rope_dim], dim=-1)
        k_rope = apply_rotary(k_rope[:, None], cos, sin)[:, 0]  # (B, T, rope): one key for all heads
        latent = torch.cat([self.kv_norm(latent), k_rope], dim=-1)  # (B, T, r + rope): what is cached
        if cache is not None:
            latent = cache.update(latent)  # (B, T_keys, r + rope)
        c_kv, k_rope = latent.split([self.kv_lora_rank, self.rope_dim], dim=-1)
        if self.mode == "naive":
            out = self._attend_naive(q_nope, q_rope, c_kv, k_rope)
        else:
            out = self._attend_absorbed(q_nope, q_rope, c_kv, k_rope)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.v_dim)  # (B, T, H*v)
        return self.out_proj(out)

    def _attend_naive(
        self, q_nope: torch.Tensor, q_rope: torch.Tensor, c_kv: torch.Tensor, k_rope: torch.Tensor
    ) -> torch.Tensor:
        """Decompress every cached latent into per-head keys and values, then ordinary attention."""
        B, t_key, _ = c_kv.shape
        kv = self.kv_up(c_kv).view(B, t_key, self.n_heads, -1).transpose(1, 2)  # (B, H, Tk, nope + v)
        k_nope, v = kv.split([self.nope_dim, self.v_dim], dim=-1)
        k_rope = k_rope[:, None].expand(-1, self.n_heads, -1, -1)  # (B, H, Tk, rope), shared
        q = torch.cat([q_nope, q_rope], dim=-1)  # (B, H, T, nope + rope)
        k = torch.cat([k_nope, k_rope], dim=-1)
        mask = causal_mask(q.shape[-2], t_key, q.device)  # end-aligned: cached keys come first
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)  # (B, H, T, v)

    def _attend_absorbed(
        self, q_nope: torch.Tensor, q_rope: torch.Tensor, c_kv: torch.Tensor, k_rope: torch.Tensor
    ) -> torch.Tensor:
        """Attention in the latent space: W_UK folded into the queries, W_UV applied after the sum."""
        w_uk, w_uv = self._up_weights()
        q_latent = torch.einsum("bhtn,hnr->bhtr", q_nope, w_uk)  # (B, H, T, r): W_UK^T q_nope
        scores = q_latent @ c_kv[:, None].transpose(-2, -1)  # (B, H, T, Tk): = q_nope . k_nope
        scores = (scores + q_rope @ k_rope[:, None].transpose(-2, -1)) * self.scale
        mask = causal_mask(q_nope.shape[-2], c_kv.shape[1], q_nope.device)
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        out_latent = weights @ c_kv[:, None]  # (B, H, T, r): a weighted sum of latents
        return torch.einsum("bhtr,hvr->bhtv", out_latent, w_uv)  # (B, H, T, v) = W_UV (sum)


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    max_seq_len: int = 1024
    q_lora_rank: int | None = option(64, min=1)  # None: a full-rank query projection (V2-Lite)
    kv_lora_rank: int = option(32, min=1)  # the cached latent's size
    qk_nope_head_dim: int = option(32, min=1)  # per-head query/key dims without position
    qk_rope_head_dim: int = option(16, min=2)  # the decoupled RoPE dims (even), key shared by heads
    v_head_dim: int = option(32, min=1)
    mode: str = option("naive", choices=("naive", "absorbed"))  # decompress keys, or absorb W_UK/W_UV
    rope_theta: float = 10000.0
    norm_eps: float = 1e-6
    tie_embeddings: bool = False


# DeepSeek-V3's attention (config.json of deepseek-ai/DeepSeek-V3) in one dense layer with its
# vocabulary and its dense-layer MLP (intermediate_size 18432): the model's first layer.
DEEPSEEK_V3_LAYER = dict(
    vocab_size=129280,
    d_model=7168,
    n_layers=1,
    n_heads=128,
    d_ff=18432,
    max_seq_len=4096,
    q_lora_rank=1536,
    kv_lora_rank=512,
    qk_nope_head_dim=128,
    qk_rope_head_dim=64,
    v_head_dim=128,
    tie_embeddings=False,
)


@register(
    "mla",
    family="attention",
    config=Config,
    summary="Multi-head latent attention LM (DeepSeek-V2/V3): a compressed KV latent plus a decoupled RoPE key.",
    paper="DeepSeek-V2: A Strong, Economical, and Efficient Mixture-of-Experts Language Model",
    year=2024,
    arxiv="2405.04434",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=64,
        max_seq_len=64,
        q_lora_rank=16,
        kv_lora_rank=16,
        qk_nope_head_dim=8,
        qk_rope_head_dim=4,
        v_head_dim=8,
    ),
    presets={
        "mla_deepseek_v3_layer": Preset(
            DEEPSEEK_V3_LAYER,
            params=2_436_848_640,
            source="DeepSeek-V3 attention dims, 1 dense layer (d_ff 18432) + embeddings + untied head: "
            "transformers DeepseekV3ForCausalLM(num_hidden_layers=1, first_k_dense_replace=1) on meta",
        )
    },
    outputs="logits (B, T, vocab_size)",
)
class MLA(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.qk_rope_head_dim, c.rope_theta)  # no parameters: shared by all layers
        blocks = prenorm_blocks(
            c,
            lambda _: MultiHeadLatentAttention(
                c.d_model,
                c.n_heads,
                q_lora_rank=c.q_lora_rank,
                kv_lora_rank=c.kv_lora_rank,
                qk_nope_head_dim=c.qk_nope_head_dim,
                qk_rope_head_dim=c.qk_rope_head_dim,
                v_head_dim=c.v_head_dim,
                rope=rope,
                norm_eps=c.norm_eps,
                mode=c.mode,
            ),
        )
        super().__init__(config, blocks)


# transformers' DeepseekV3ForCausalLM (and V2) attention names -> ours, `i` = layer; the rest of a layer
# is Llama's: input_layernorm / post_attention_layernorm -> blocks.i.mixer_norm / mlp_norm,
# mlp.{gate,up,down}_proj -> blocks.i.mlp.{gate,up,down}. Checkpoints need rope_interleave=False or
# their rope rows of q_b_proj and kv_a_proj_with_mqa de-interleaved (see the module docstring).
HF_DEEPSEEK_V3_NAMES = [
    (r"model\.layers\.(\d+)\.self_attn\.q_a_proj\.weight", r"blocks.\1.mixer.q_down.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_a_layernorm\.weight", r"blocks.\1.mixer.q_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_b_proj\.weight", r"blocks.\1.mixer.q_up.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.weight", r"blocks.\1.mixer.q_proj.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.kv_a_proj_with_mqa\.weight", r"blocks.\1.mixer.kv_down.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.kv_a_layernorm\.weight", r"blocks.\1.mixer.kv_norm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.kv_b_proj\.weight", r"blocks.\1.mixer.kv_up.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.mixer.out_proj.weight"),
]
