"""FlashLinearAttention: chunkwise linear attention whose backward pass recomputes instead of
storing, itself made of three chunkwise linear attentions.

Paper: "Gated Linear Attention Transformers with Hardware-Efficient Training" (Yang, Wang, Shen,
Panda & Kim, 2023, arXiv:2312.06635), section 3: FLASHLINEARATTENTION, the I/O-aware algorithm
behind the flash-linear-attention library.

Causal linear attention, o_t = sum_{s<=t} (q_t . k_s) v_s, is trained in chunks: masked attention
inside each chunk, a d x d state S carried between chunks. Left to autograd, every chunk's state,
score matrix and intermediate is kept for the backward pass: memory grows with T / C states of
d x d. FLASHLINEARATTENTION's "non-materialization" variant keeps only Q, K, V and recomputes in
the backward. The backward has the same shape as the forward, because the gradients are linear
attentions too:

    dQ_t = sum_{s<=t} (dO_t . v_s) k_s     causal:       linear attention(dO, V, K)
    dK_s = sum_{t>=s} (v_s . dO_t) q_t     anti-causal:  the same on time-reversed (V, dO, Q)
    dV_s = sum_{t>=s} (k_s . q_t) dO_t     anti-causal:  the same on time-reversed (K, Q, dO)

so one chunkwise routine (`bestiary.layers.linear_attention`) serves forward and backward
(`ChunkwiseLinearAttention`, a torch.autograd.Function). The layer is plain linear attention
(identity feature map, no normaliser; an RMSNorm on the output keeps its scale), as in the
paper's linear-attention baseline.

Simplified: the GPU-specific parts (tiling in SRAM, the materialisation trade-off, secondary
chunking for gates) are out of scope on CPU; only the ungated case is implemented.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache, linear_attention
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32000
    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 4
    d_ff: int = 2816
    mlp: str = "swiglu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)  # chunkwise: the recomputing FlashLinearAttention
    chunk_size: int = option(64, min=1)


def _causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int) -> torch.Tensor:
    return linear_attention(q, k, v, mode="chunkwise", chunk_size=chunk_size)[0]


def _anti_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """sum over s >= t instead of s <= t: the causal form on the time-reversed sequence."""
    return _causal(q.flip(2), k.flip(2), v.flip(2), chunk_size).flip(2)


class ChunkwiseLinearAttention(torch.autograd.Function):
    """o = causal linear attention(q, k, v), chunkwise; saves only q, k, v for the backward."""

    @staticmethod
    def forward(ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk_size: int) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.chunk_size = chunk_size
        return _causal(q, k, v, chunk_size)  # Function.forward runs without building a graph

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
        q, k, v = ctx.saved_tensors
        size = ctx.chunk_size
        grad_q = _causal(grad_out, v, k, size)  # dQ_t = sum_{s<=t} (dO_t . v_s) k_s
        grad_k = _anti_causal(v, grad_out, q, size)  # dK_s = sum_{t>=s} (v_s . dO_t) q_t
        grad_v = _anti_causal(k, q, grad_out, size)  # dV_s = sum_{t>=s} (k_s . q_t) dO_t
        return grad_q, grad_k, grad_v, None


class FlashLinearAttention(nn.Module):
    """(B, T, D) -> (B, T, D): plain causal linear attention, trained with the recomputing backward."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        norm_eps: float = 1e-6,
        mode: str = "chunkwise",
        chunk_size: int = 64,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.mode, self.chunk_size = mode, chunk_size
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.norm = RMSNorm(d_model, eps=norm_eps)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """The state per head, (B, H, head_dim, head_dim)."""
        return RecurrentState(self, batch, ("state",))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v = self.qkv_proj(x).view(B, T, 3, self.n_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q = q * self.head_dim**-0.5  # (B, H, T, Dh)
        if cache is None and self.mode == "chunkwise":
            out = ChunkwiseLinearAttention.apply(q, k, v, self.chunk_size)
        else:  # decoding (it needs the state) and the reference forms go through autograd
            out = attend_with_cache(self, q, k, v, None, cache, mode=self.mode, chunk_size=self.chunk_size)
            if cache is not None:
                cache.length += T
        return self.out_proj(self.norm(out.transpose(1, 2).reshape(B, T, self.d_model)))


@register(
    "flash_linear_attention",
    family="attention",
    config=Config,
    summary="Linear attention trained with FlashLinearAttention: chunkwise, backward recomputed as three linear attentions.",
    paper="Gated Linear Attention Transformers with Hardware-Efficient Training",
    year=2023,
    arxiv="2312.06635",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class FlashLinearAttentionLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: FlashLinearAttention(
                c.d_model, c.n_heads, norm_eps=c.norm_eps, mode=c.mode, chunk_size=c.chunk_size
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
