"""GLA: gated linear attention with data-dependent, per-channel forget gates.

Paper: "Gated Linear Attention Transformers with Hardware-Efficient Training" (Yang, Wang, Shen,
Panda & Kim, 2023, arXiv:2312.06635).

Linear attention keeps a matrix state S_t = S_{t-1} + k_t^T v_t and forgets nothing. GLA lets each
key channel forget at its own, input-dependent rate:

    S_t = diag(alpha_t) S_{t-1} + k_t^T v_t,    o_t = q_t S_t
    alpha_t = sigmoid(x_t W_1 W_2 + b)^(1/tau)       (low-rank W_1 W_2, tau = 16)

alpha_t is a vector over key channels (a "per-channel decay", unlike RetNet's fixed scalar per
head); tau pushes it towards 1 so memories last long at initialisation. Training uses the
chunkwise form (masked attention with the gates inside a chunk, the state between chunks), which
`bestiary.layers.linear_attention` provides along with the parallel and recurrent forms. The
output is normed per head, gated by swish(x W_r), and projected; keys are half as wide as values
(expand_k = 0.5) to keep the state small.

Simplified: the paper's FLASHLINEARATTENTION kernels (secondary chunking, materialising states in
SRAM) are replaced by plain PyTorch; the math is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.linear_attention import MODES, attend_with_cache
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
    expand_k: float = option(0.5, gt=0.0)  # key width = expand_k x d_model
    rank: int = 16  # rank of the forget-gate projection W_1 W_2
    gate_temperature: float = option(16.0, gt=0.0)  # tau: alpha = sigmoid(.)^(1/tau)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True
    mode: str = option("chunkwise", choices=MODES)
    chunk_size: int = option(64, min=1)


class GatedLinearAttention(nn.Module):
    """(B, T, D) -> (B, T, D): per-head linear attention with per-key-channel forget gates."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        expand_k: float = 0.5,
        rank: int = 16,
        gate_temperature: float = 16.0,
        norm_eps: float = 1e-6,
        mode: str = "chunkwise",
        chunk_size: int = 64,
    ):
        super().__init__()
        key_dim = int(d_model * expand_k)
        if key_dim % n_heads or d_model % n_heads:
            raise ValueError(
                f"d_model={d_model} and its key width {key_dim} must divide by n_heads={n_heads}"
            )
        self.d_model, self.n_heads = d_model, n_heads
        self.key_dim, self.head_k, self.head_v = key_dim, key_dim // n_heads, d_model // n_heads
        self.gate_temperature = gate_temperature
        self.mode, self.chunk_size = mode, chunk_size
        self.q_proj = nn.Linear(d_model, key_dim, bias=False)
        self.k_proj = nn.Linear(d_model, key_dim, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.gate_down = nn.Linear(d_model, rank, bias=False)  # W_1
        self.gate_up = nn.Linear(rank, key_dim, bias=True)  # W_2 and b
        self.out_gate = nn.Linear(d_model, d_model, bias=False)  # W_r
        self.head_norm = RMSNorm(self.head_v, eps=norm_eps)  # shared by the heads
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int) -> RecurrentState:
        """The state per head, (B, H, head_k, head_v)."""
        return RecurrentState(self, batch, ("state",))

    def log_forget_gate(self, x: torch.Tensor) -> torch.Tensor:
        """log alpha_t = logsigmoid(x W_1 W_2 + b) / tau, (B, T, key_dim), all <= 0."""
        return F.logsigmoid(self.gate_up(self.gate_down(x))) / self.gate_temperature

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H = self.n_heads
        q = self.q_proj(x).view(B, T, H, self.head_k).transpose(1, 2) * self.head_k**-0.5  # (B, H, T, Dk)
        k = self.k_proj(x).view(B, T, H, self.head_k).transpose(1, 2)  # (B, H, T, Dk)
        v = self.v_proj(x).view(B, T, H, self.head_v).transpose(1, 2)  # (B, H, T, Dv)
        log_alpha = self.log_forget_gate(x).view(B, T, H, self.head_k).transpose(1, 2)  # (B, H, T, Dk)
        out = attend_with_cache(self, q, k, v, log_alpha, cache, mode=self.mode, chunk_size=self.chunk_size)
        if cache is not None:
            cache.length += T
        out = self.head_norm(out).transpose(1, 2).reshape(B, T, self.d_model)  # (B, T, H*Dv)
        return self.out_proj(F.silu(self.out_gate(x)) * out)


@register(
    "gla",
    family="attention",
    config=Config,
    summary="Gated linear attention: data-dependent per-channel forget gates (low-rank), trained chunkwise.",
    paper="Gated Linear Attention Transformers with Hardware-Efficient Training",
    year=2023,
    arxiv="2312.06635",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, rank=4, chunk_size=4),
    outputs="logits (B, T, vocab_size)",
)
class GLA(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: GatedLinearAttention(
                c.d_model,
                c.n_heads,
                expand_k=c.expand_k,
                rank=c.rank,
                gate_temperature=c.gate_temperature,
                norm_eps=c.norm_eps,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
            mlp=c.mlp,
            norm=c.norm,
        )
        super().__init__(c, blocks)
