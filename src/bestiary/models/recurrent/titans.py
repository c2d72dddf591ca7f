"""Titans: a neural long-term memory (an MLP) that learns at test time, by gradient descent with
momentum ("surprise") and weight decay ("forgetting").

Paper: "Titans: Learning to Memorize at Test Time" (Behrouz, Zhong & Mirrokni, 2024,
arXiv:2501.00663).

The long-term memory M is a small MLP per head, M(k) = SiLU(k W1) W2, whose weights are the
recurrent state. Each token is a training example for it: the loss l(M; x_t) = ||M(k_t) - v_t||^2
measures how *surprising* the token is, and the memory takes a step on it:

    S_t = eta_t S_{t-1} - theta_t grad l(M_{t-1}; x_t)     surprise: past surprise decays (momentum)
    M_t = (1 - alpha_t) M_{t-1} + S_t                      forgetting: weight decay alpha_t in (0, 1)
    y_t = M_t(q_t)                                         retrieval, no update

with alpha, eta, theta data-dependent (sigmoids of projections of x_t). To train in parallel, the
paper takes all gradients of a chunk of tokens at the weights of the chunk's start (mini-batch
gradient descent, as TTT); the momentum and decay are then two elementwise linear recurrences
(`scan_sequential`). chunk_size=1 is the per-token definition. q, k, v get a short causal conv and
SiLU, q and k are L2-normalised, as in the paper.

Variants (`variant`): "lmm", the memory alone as the token mixer of every block (the paper's
"Titans (LMM)"); "mal", Memory As a Layer: each layer is the memory followed by sliding-window
attention (with RoPE) and the MLP; "mag", Memory As a Gate: one mixer runs sliding-window attention
(short-term, precise) and the memory (long-term, compressed) side by side on the same input and
combines them, o = RMSNorm(attention) * sigmoid(RMSNorm(memory)) (the paper's learned vector-valued
normalisations followed by a non-linear gate). Simplified: no persistent-memory tokens, and MAC
(memory as context, attention over retrieved memory segments) is not built.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp, transformer_block
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.delta_rule import (
    GatedRMSNorm,
    ShortConv,
    l2_normalize,
    mlp_memory_grads,
    mlp_memory_read,
)
from bestiary.layers.norms import RMSNorm
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.scan import scan_sequential
from bestiary.layers.state import RecurrentState
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    mlp: str = "swiglu"
    kernel_size: int = 4  # taps of the short convolution on q, k, v
    memory_expansion: int = option(2, min=1)  # the memory MLP's hidden width, in head_dims
    chunk_size: int = option(16, min=1)  # tokens whose memory gradients share one set of weights
    base_lr: float = option(1.0, gt=0.0)  # theta_t = base_lr * sigmoid(.)
    # memory alone; memory then sliding-window attention; or the two gated together
    variant: str = option("lmm", choices=("lmm", "mal", "mag"))
    sliding_window: int = option(64, min=1)  # attention window of the "mal" and "mag" variants
    rope_theta: float = 10000.0
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True


class NeuralMemory(nn.Module):
    """x (B, T, d_model) -> (B, T, d_model). Cache: the conv window, the memory (W1, W2), its
    momentum, and its weights at the current chunk's start (where the chunk's gradients are taken)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.d_model, self.n_heads = c.d_model, c.n_heads
        self.head_dim = d = c.d_model // c.n_heads
        hidden = d * c.memory_expansion
        self.chunk_size, self.base_lr = c.chunk_size, c.base_lr
        self.q_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.k_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.v_proj = nn.Linear(c.d_model, c.d_model, bias=False)
        self.conv = ShortConv(3 * c.d_model, c.kernel_size)
        self.gate_proj = nn.Linear(c.d_model, 3 * c.n_heads)  # alpha (forget), eta (momentum), theta (lr)
        self.W1_init = nn.Parameter(torch.zeros(c.n_heads, d, hidden))  # the memory before any token
        self.W2_init = nn.Parameter(torch.zeros(c.n_heads, hidden, d))
        self.out_norm = GatedRMSNorm(d, c.norm_eps)
        self.out_proj = nn.Linear(c.d_model, c.d_model, bias=False)

    def init_weights(self) -> None:
        """A memory that starts as a random MLP, forgets little (alpha ~ 0.007), keeps most of its
        momentum (eta ~ 0.73) and learns at a moderate rate (theta ~ 0.12 base_lr)."""
        with torch.no_grad():
            nn.init.normal_(self.W1_init, std=self.W1_init.shape[1] ** -0.5)
            nn.init.normal_(self.W2_init, std=self.W2_init.shape[1] ** -0.5)
            self.gate_proj.bias.view(3, self.n_heads).copy_(torch.tensor([[-5.0], [1.0], [-2.0]]))

    def init_cache(self, batch: int) -> RecurrentState:
        names = ("conv", "W1", "W2", "momentum1", "momentum2", "W1_start", "W2_start")
        return RecurrentState(self, batch, names)

    def views(self, x: torch.Tensor, window: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        """x (B, T, D) -> q, k, v (B, T, H, d), the gates alpha, eta, theta (B, T, H), the conv window."""
        B, T, _ = x.shape
        qkv = torch.cat([self.q_proj(x), self.k_proj(x), self.v_proj(x)], dim=-1)  # (B, T, 3 D)
        qkv, window = self.conv(qkv, window)
        q, k, v = qkv.view(B, T, 3, self.n_heads, self.head_dim).unbind(dim=2)  # each (B, T, H, d)
        alpha, eta, theta = torch.sigmoid(self.gate_proj(x)).view(B, T, 3, self.n_heads).unbind(dim=2)
        return l2_normalize(q), l2_normalize(k), v, alpha, eta, self.base_lr * theta, window

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        q, k, v, alpha, eta, theta, window = self.views(x, None if cache is None else cache["conv"])

        def cached(name: str, initial: torch.Tensor) -> torch.Tensor:
            return initial if cache is None or cache[name] is None else cache[name]

        W1 = cached("W1", self.W1_init.expand(B, -1, -1, -1))  # (B, H, d, m)
        W2 = cached("W2", self.W2_init.expand(B, -1, -1, -1))  # (B, H, m, d)
        momentum1, momentum2 = (
            cached("momentum1", torch.zeros_like(W1)),
            cached("momentum2", torch.zeros_like(W2)),
        )
        W1_start, W2_start = cached("W1_start", W1), cached("W2_start", W2)
        seen = 0 if cache is None else cache.length
        outputs, t = [], 0
        while t < T:  # one (part of a) chunk at a time, aligned to absolute positions
            done = (seen + t) % self.chunk_size  # tokens of this chunk already read (by an earlier call)
            L = min(self.chunk_size - done, T - t)
            part = slice(t, t + L)
            # the surprise of each token, all measured by the memory at the chunk's start
            recalled, pre, hidden = mlp_memory_read(k[:, part], W1_start, W2_start)
            grad1, grad2 = mlp_memory_grads(k[:, part], W2_start, pre, hidden, 2 * (recalled - v[:, part]))
            lr, keep_momentum, keep_memory = theta[:, part], eta[:, part], 1 - alpha[:, part]  # (B, L, H)
            # S_t = eta_t S_{t-1} - theta_t grad_t;  M_t = (1 - alpha_t) M_{t-1} + S_t, per weight
            momentum1_t = scan_sequential(
                keep_momentum[..., None, None], -lr[..., None, None] * grad1, momentum1
            )
            momentum2_t = scan_sequential(
                keep_momentum[..., None, None], -lr[..., None, None] * grad2, momentum2
            )
            W1_t = scan_sequential(keep_memory[..., None, None], momentum1_t, W1)
            W2_t = scan_sequential(keep_memory[..., None, None], momentum2_t, W2)
            outputs.append(mlp_memory_read(q[:, part], W1_t, W2_t)[0])  # (B, L, H, d): y_t = M_t(q_t)
            W1, W2, momentum1, momentum2 = W1_t[:, -1], W2_t[:, -1], momentum1_t[:, -1], momentum2_t[:, -1]
            if done + L == self.chunk_size:  # the chunk is complete: the next one differentiates here
                W1_start, W2_start = W1, W2
            t += L
        if cache is not None:
            cache["conv"], cache["W1"], cache["W2"] = window, W1, W2
            cache["momentum1"], cache["momentum2"] = momentum1, momentum2
            cache["W1_start"], cache["W2_start"] = W1_start, W2_start
            cache.length += T
        y = self.out_norm(torch.cat(outputs, dim=1))  # (B, T, H, d)
        return self.out_proj(y.reshape(B, T, -1))


class MemoryAsGate(nn.Module):
    """Titans-MAG's mixer: sliding-window attention and the neural memory read the same x, and the
    memory gates the attention: o = RMSNorm(attention(x)) * sigmoid(RMSNorm(memory(x))).
    Cache: (the attention's KVCache, the memory's RecurrentState)."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        self.attention = MultiHeadAttention(
            c.d_model,
            c.n_heads,
            bias=False,
            causal=True,
            window=c.sliding_window,
            rope=RotaryEmbedding(c.d_model // c.n_heads, theta=c.rope_theta),
        )
        self.memory = NeuralMemory(c)
        self.attention_norm = RMSNorm(c.d_model, c.norm_eps)
        self.memory_norm = RMSNorm(c.d_model, c.norm_eps)

    def init_cache(self, batch: int) -> tuple[object, RecurrentState]:
        return self.attention.init_cache(batch), self.memory.init_cache(batch)

    def forward(self, x: torch.Tensor, *, cache: tuple[object, RecurrentState] | None = None) -> torch.Tensor:
        attention_cache, memory_cache = (None, None) if cache is None else cache
        short_term = self.attention(x, cache=attention_cache)  # (B, T, D)
        long_term = self.memory(x, cache=memory_cache)  # (B, T, D)
        return self.attention_norm(short_term) * torch.sigmoid(self.memory_norm(long_term))


@register(
    "titans",
    family="recurrent",
    config=Config,
    summary="Neural long-term memory: an MLP trained at test time by gradient steps with momentum and decay.",
    paper="Titans: Learning to Memorize at Test Time",
    year=2024,
    arxiv="2501.00663",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4, sliding_window=4),
    outputs="logits (B, T, vocab_size)",
)
class Titans(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks: list[nn.Module] = []
        for _ in range(c.n_layers):
            if c.variant in ("lmm", "mag"):  # the memory (alone, or gating attention) is the token mixer
                mixer = NeuralMemory(c) if c.variant == "lmm" else MemoryAsGate(c)
                mlp = make_mlp(c.mlp, c.d_model, c.d_ff)
                blocks.append(Block(c.d_model, mixer, mlp, norm=c.norm, norm_eps=c.norm_eps))
                continue
            # MAL: the memory layer, then sliding-window attention over its output (short-term memory)
            blocks.append(Block(c.d_model, NeuralMemory(c), None, norm=c.norm, norm_eps=c.norm_eps))
            blocks.append(
                transformer_block(
                    c.d_model,
                    c.n_heads,
                    c.d_ff,
                    window=c.sliding_window,
                    rope=RotaryEmbedding(c.d_model // c.n_heads, theta=c.rope_theta),
                    norm=c.norm,
                    norm_eps=c.norm_eps,
                    mlp=c.mlp,
                )
            )
        super().__init__(config, blocks)
