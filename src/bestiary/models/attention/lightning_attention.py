"""Lightning Attention-2: linear attention with decay, computed block by block as intra-block
masked attention plus an inter-block recurrence.

Paper: "Lightning Attention-2: A Free Lunch for Handling Unlimited Sequence Lengths in Large
Language Models" (Qin, Sun, Li, Shen, Sun & Zhong, 2024, arXiv:2401.04658), the attention of
TransNormerLLM ("TransNormerLLM: A Faster and Better Large Language Model with Improved
TransNormer", Qin et al., 2023, arXiv:2307.14384).

Causal linear attention needs a cumulative sum over positions, which is slow as a loop and
quadratic as a masked matmul. Lightning Attention-2 splits the sequence into blocks of B tokens:

    O_block = [(Q K^T) ⊙ M] V        intra-block: masked attention with decay M_ts = lambda^(t-s)
            + Lambda Q KV            inter-block: the state KV of all earlier blocks, decayed
    KV     <- lambda^B KV + (lambda^(B-s) K)^T V

so the work is linear in T and each step is a dense matmul. The two contributions are available
separately (`LightningAttention.contributions`): near the start of a block most of the output is
intra-block, later the carried state dominates. Following TransNormerLLM, q, k and v pass through
swish, the output is RMS-normed (without weight: "SRMSNorm") and gated, and every layer l of L has
its own per-head decays lambda_h = exp(-m_h (1 - l / (L - 1))) with ALiBi's slopes m_h: lower
layers forget fast, the top layer barely at all.

Simplified: no custom kernel (the blocks are a Python loop of matmuls, `bestiary.layers.linear_attention`);
the MLP is SwiGLU instead of TransNormerLLM's SGLU; no LRPE position encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache, chunkwise_parts
from bestiary.layers.positions import alibi_slopes
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 64000
    d_model: int = 2048
    n_layers: int = 24
    n_heads: int = 16
    d_ff: int = 5632
    mlp: str = "swiglu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)  # the block size B


def layer_log_decays(n_heads: int, layer: int, n_layers: int) -> torch.Tensor:
    """log lambda_h = -m_h (1 - l / (L - 1) + 1e-5), (H,) float64 (TransNormerLLM's schedule; the
    1e-5 keeps a little decay in the top layer)."""
    depth = layer / (n_layers - 1) if n_layers > 1 else 0.0
    return -alibi_slopes(n_heads).double() * (1 - depth + 1e-5)


class LightningAttention(nn.Module):
    """(B, T, D) -> (B, T, D): swish q, k, v; block-wise linear attention with per-head decay;
    SRMSNorm; output gate."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        layer: int = 0,
        n_layers: int = 1,
        norm_eps: float = 1e-6,
        mode: str = "chunkwise",
        chunk_size: int = 64,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.layer, self.n_layers = layer, n_layers
        self.norm_eps = norm_eps
        self.mode, self.chunk_size = mode, chunk_size
        self.qkv_proj = nn.Linear(d_model, 3 * d_model, bias=False)
        self.gate_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """The KV state per head, (B, H, head_dim, head_dim)."""
        return RecurrentState(self, batch, ("state",))

    def log_decay(self) -> torch.Tensor:
        return layer_log_decays(self.n_heads, self.layer, self.n_layers)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        B, T, _ = x.shape
        qkv = F.silu(self.qkv_proj(x)).view(B, T, 3, self.n_heads, self.head_dim)  # (B, T, 3, H, Dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, Dh)
        return q, k, v

    def _finish(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Heads (B, H, T, Dh) -> SRMSNorm (no weight) -> gate -> projection (B, T, D)."""
        B, T, _ = x.shape
        out = out.transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, H*Dh)
        out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + self.norm_eps)
        return self.out_proj(F.silu(self.gate_proj(x)) * out)

    def contributions(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The attention output split into its intra-block and inter-block parts, each (B, H, T, Dh),
        before the norm (they add up to the attention output; for plotting which one dominates)."""
        check_sequence(x, self.d_model)
        q, k, v = self._qkv(x)
        log_decay = self.log_decay().to(x.device, x.dtype)
        intra, inter, _ = chunkwise_parts(q, k, v, log_decay, chunk_size=self.chunk_size)
        return intra, inter

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        q, k, v = self._qkv(x)
        log_decay = self.log_decay().to(x.device, x.dtype)
        out = attend_with_cache(self, q, k, v, log_decay, cache, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache.length += x.shape[1]
        return self._finish(x, out)


@register(
    "lightning_attention",
    family="attention",
    config=Config,
    summary="Lightning Attention-2: intra-block masked attention + inter-block decayed state, linear in T.",
    paper="Lightning Attention-2: A Free Lunch for Handling Unlimited Sequence Lengths in Large Language Models",
    year=2024,
    arxiv="2401.04658",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class LightningAttentionLM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda i: LightningAttention(
                c.d_model,
                c.n_heads,
                layer=i,
                n_layers=c.n_layers,
                norm_eps=c.norm_eps,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
