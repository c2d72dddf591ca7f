"""H3: "Hungry Hungry Hippos", two SSMs and multiplicative interactions in place of attention.

Paper: "Hungry Hungry Hippos: Towards Language Modeling with State Space Models" (Fu, Dao, Saab,
Thomas, Rudra & Re, 2022, arXiv:2212.14052).

SSMs lagged attention on two synthetic skills a language model needs: recalling a token seen
earlier, and comparing tokens across the sequence. H3 builds both from SSMs and gates, with the
roles of attention's query, key and value:

    q, k, v = Linear(x)
    k~  = shift SSM(k)            A is a shift matrix: the state is a register of the last N keys,
                                  and C reads a learned mix of them (a short causal conv)
    kv  = k~ ⊗ v (per head)       multiplicative interaction: remember v where the key fired
    kv~ = diagonal SSM(kv)        S4D: accumulates kv over the whole past (a decaying memory)
    y   = Linear(q · kv~)         the query reads the memory out

With head_dim d, each head's kv is a d x d matrix, like linear attention's state. The layer trains as
FFT convolutions and decodes as two recurrences (the cache: the shift register and the S4D state).

Simplified: pure H3 blocks (the paper's best LMs add two attention layers); the diagonal SSM is S4D
(ZOH, S4D-Lin init) shared across the d x d entries of a head.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.ssm_kernels import DiagonalSSM, fft_causal_conv
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 50_277
    d_model: int = 768
    n_layers: int = 12
    head_dim: int = 1  # the paper's default: kv is a 1 x 1 "matrix" per channel
    d_state: int = 64  # the diagonal SSM's state size (N/2 complex pairs)
    kernel_size: int = 4  # the shift SSM's state size: how many past keys its register holds
    d_ff: int = 3072
    mlp: str = "gelu"
    norm: str = option("layernorm", choices=("layernorm", "rmsnorm"))
    norm_eps: float = 1e-5
    dropout: float = 0.0
    tie_embeddings: bool = True
    mode: str = option("convolution", choices=("convolution", "recurrent"))


class ShiftSSM(nn.Module):
    """x_t = S x_{t-1} + e_1 u_t, y_t = C x_t, per channel, with S the N x N shift matrix.

    The state is a shift register, x_t = (u_t, u_{t-1}, ..., u_{t-N+1}), so the kernel C S^l e_1 is
    C_l for l < N and 0 beyond: a short causal convolution with taps C.
    forward(u (B, T, D), x0 (B, D, N) or None, mode) -> (y (B, T, D), the register (B, D, N))."""

    def __init__(self, channels: int, size: int):
        super().__init__()
        self.size = size
        self.C = nn.Parameter(torch.randn(channels, size) / size**0.5)

    def forward(
        self, u: torch.Tensor, register: torch.Tensor | None = None, *, mode: str = "convolution"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if register is None:
            register = u.new_zeros(u.shape[0], u.shape[2], self.size)
        if mode == "recurrent":
            outputs = []
            for t in range(u.shape[1]):
                register = torch.cat([u[:, t, :, None], register[..., :-1]], dim=-1)  # shift in u_t
                outputs.append((self.C * register).sum(-1))
            return torch.stack(outputs, 1), register
        past = register.flip(-1).transpose(1, 2)  # (B, N, D): u_{t-N+1} .. u_t, oldest first
        full = torch.cat([past, u], dim=1)  # (B, N + T, D)
        y = fft_causal_conv(full, self.C)[:, self.size :]
        return y, full[:, -self.size :].flip(1).transpose(1, 2)


class H3Mixer(nn.Module):
    """x (B, T, D) -> (B, T, D). cache: RecurrentState with "shift" (B, D, N_shift) and "h" (B*d*d, H, N/2)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.head_dim, self.mode = c.d_model, c.head_dim, c.mode
        self.n_heads = c.d_model // c.head_dim
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(c.d_model, c.d_model) for _ in range(3))
        self.shift_ssm = ShiftSSM(c.d_model, c.kernel_size)
        self.diag_ssm = DiagonalSSM(self.n_heads, c.d_state, init="lin")
        self.out_proj = nn.Linear(c.d_model, c.d_model)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("shift", "h"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        mode = "recurrent" if cache is not None and x.shape[1] == 1 else self.mode
        B, T, _ = x.shape
        H, d = self.n_heads, self.head_dim
        q, v = self.q_proj(x), self.v_proj(x)
        k, register = self.shift_ssm(self.k_proj(x), None if cache is None else cache["shift"], mode=mode)
        kv = k.view(B, T, H, d, 1) * v.view(B, T, H, 1, d)  # (B, T, H, d, d): outer product per head
        # the diagonal SSM runs along time per head, shared by the d x d entries: move them to the batch
        kv = kv.permute(0, 3, 4, 1, 2).reshape(B * d * d, T, H)  # (B d d, T, H)
        kv, h = self.diag_ssm(kv, None if cache is None else cache["h"], mode=mode)
        kv = kv.view(B, d, d, T, H).permute(0, 3, 4, 1, 2)  # (B, T, H, d, d)
        y = torch.einsum("bthi,bthij->bthj", q.view(B, T, H, d), kv).reshape(B, T, self.d_model)
        if cache is not None:
            cache["shift"], cache["h"] = register, h
            cache.length += T
        return self.out_proj(y)


@register(
    "h3",
    family="ssm",
    config=Config,
    summary="H3: shift SSM on keys, key-value products, diagonal SSM memory read by queries (attention-like SSM layer).",
    paper="Hungry Hungry Hippos: Towards Language Modeling with State Space Models",
    year=2022,
    arxiv="2212.14052",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, head_dim=4, d_state=8, d_ff=32),
    outputs="logits (B, T, vocab_size)",
    rules=(
        Rule(
            lambda c: c.d_model % c.head_dim == 0,
            "d_model={d_model} must be divisible by head_dim={head_dim}",
        ),
        Rule(lambda c: c.d_state % 2 == 0, "d_state={d_state} must be even (conjugate pairs)", ("d_state",)),
    ),
)
class H3(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(c, lambda _: H3Mixer(c), mlp=c.mlp, norm=c.norm, dropout=c.dropout)
        super().__init__(config, blocks)
