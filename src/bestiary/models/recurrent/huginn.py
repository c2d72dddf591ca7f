"""Huginn: a recurrent-depth language model that thinks longer by iterating one block more times.

Paper: "Scaling up Test-Time Compute with Latent Reasoning: A Recurrent Depth Approach" (Geiping,
McLeish, Jain, Kirchenbauer, Singh, Bartoldson, Kailkhura, Bhatele & Goldstein, 2025,
arXiv:2502.05171).

Instead of generating more tokens to reason ("chain of thought"), Huginn spends more compute per
token in a latent loop. Three parts:

    prelude  P: a few transformer layers embed the tokens:          e = P(x)
    core     R: a few layers applied r times, re-reading the input:  s_0 ~ N(0, sigma^2),
                s_i = R(A([s_{i-1}, e]))   for i = 1..r  (A: a linear adapter from 2d to d)
    coda     C: a few layers and the LM head decode the last state:  logits = head(C(s_r))

The same weights run r times, so depth (and test-time compute) is chosen per call (`n_iterations`),
not fixed by the parameter count. Training samples r per step from a log-normal Poisson
distribution (`sample_n_iterations`) and back-propagates only through the last k iterations
(`backprop_depth`), so the cost of a step does not grow with r. Every block is a "sandwich" block,
x = n2(x + attn(n1(x))); x = n4(x + mlp(n3(x))): the extra norms keep the state's scale fixed however
often the core is applied.

Simplified: RoPE attention with one KV cache per (iteration, core layer) when decoding (the paper
also shares cache slots across iterations); no embedding scale; the caller samples r.

Language model: tokens (B, T) -> logits (B, T, vocab_size). Preset: huginn_0125 (the paper's
3.5B model; its exact count is not published).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import make_mlp
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_tokens
from bestiary.layers.kv_cache import Cache, KVCache
from bestiary.layers.norms import make_norm
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 65536
    d_model: int = 512
    n_heads: int = 8
    d_ff: int = 1536
    mlp: str = "swiglu"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    rope_theta: float = 50000.0
    n_prelude: int = option(2, min=0)  # layers before the loop
    n_core: int = option(4, min=1)  # layers in the recurrent block
    n_coda: int = option(2, min=0)  # layers after the loop
    n_iterations: int = option(32, min=1)  # r: how often the core runs (the paper's mean recurrence)
    backprop_depth: int | None = option(8, min=1)  # gradients through the last k iterations only; None: all
    state_init: str = option("random", choices=("random", "zeros"))  # s_0: N(0, state_std^2), or zeros
    state_std: float = option(1.0, gt=0.0)
    tie_embeddings: bool = True


class SandwichBlock(nn.Module):
    """x = n2(x + attn(n1(x))); x = n4(x + mlp(n3(x))): a norm on each side of each branch."""

    def __init__(self, c: Config, rope: RotaryEmbedding):
        super().__init__()
        self.norms = nn.ModuleList(make_norm(c.norm, c.d_model, c.norm_eps) for _ in range(4))
        self.attn = MultiHeadAttention(c.d_model, c.n_heads, bias=False, causal=True, rope=rope)
        self.mlp = make_mlp(c.mlp, c.d_model, c.d_ff)

    def init_cache(self, batch: int) -> KVCache:
        return self.attn.init_cache(batch)

    def forward(self, x: torch.Tensor, *, cache: KVCache | None = None) -> torch.Tensor:
        n1, n2, n3, n4 = self.norms
        x = n2(x + self.attn(n1(x), cache=cache))
        return n4(x + self.mlp(n3(x)))


@register(
    "huginn",
    family="recurrent",
    config=Config,
    summary="Recurrent-depth LM: prelude, a core block iterated r times with input injection, coda.",
    paper="Scaling up Test-Time Compute with Latent Reasoning: A Recurrent Depth Approach",
    year=2025,
    arxiv="2502.05171",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=32,
        d_model=16,
        n_heads=2,
        d_ff=32,
        n_prelude=1,
        n_core=1,
        n_coda=1,
        n_iterations=3,
        state_init="zeros",
    ),
    presets={
        "huginn_0125": Preset(
            dict(vocab_size=65536, d_model=5280, n_heads=55, d_ff=17920, n_prelude=2, n_core=4, n_coda=2),
            params=None,
            source="Huginn-0125 (paper Sec. 4: h=5280, 55 heads, MLP 17920, 2+4+2 layers, r=32, k=8) is "
            "published as '3.5B'; no installed reference counts it exactly (this build: 3,564,892,320)",
        )
    },
    outputs="logits (B, T, vocab_size)",
)
class Huginn(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)
        n_blocks = c.n_prelude + c.n_core + c.n_coda
        super().__init__(config, [SandwichBlock(c, rope) for _ in range(n_blocks)])
        self.adapter = nn.Linear(2 * c.d_model, c.d_model, bias=False)  # [s, e] -> the core's input
        nn.init.normal_(self.adapter.weight, std=0.02)

    @property
    def prelude(self) -> list[nn.Module]:
        return list(self.blocks[: self.config.n_prelude])

    @property
    def core(self) -> list[nn.Module]:
        c = self.config
        return list(self.blocks[c.n_prelude : c.n_prelude + c.n_core])

    @property
    def coda(self) -> list[nn.Module]:
        return list(self.blocks[self.config.n_prelude + self.config.n_core :])

    def sample_n_iterations(self, generator: torch.Generator | None = None, sigma: float = 0.5) -> int:
        """The paper's training distribution of r: tau ~ N(log(r_mean) - sigma^2 / 2, sigma^2),
        r = 1 + Poisson(e^tau) (mean r_mean + 1, a heavy tail of long loops)."""
        mean = self.config.n_iterations
        tau = torch.randn((), generator=generator) * sigma + math.log(mean) - sigma**2 / 2
        return 1 + int(torch.poisson(tau.exp(), generator=generator))

    def init_cache(self, batch: int = 1) -> Cache:
        """One KV cache per prelude layer, per (iteration, core layer) and per coda layer."""
        c = self.config
        caches = [block.init_cache(batch) for block in self.prelude]
        caches += [block.init_cache(batch) for _ in range(c.n_iterations) for block in self.core]
        caches += [block.init_cache(batch) for block in self.coda]
        return Cache(caches, owner=self, batch=batch)

    def initial_state(self, like: torch.Tensor) -> torch.Tensor:
        if self.config.state_init == "zeros":
            return torch.zeros_like(like)
        return torch.randn_like(like) * self.config.state_std

    def core_step(
        self, state: torch.Tensor, embedded: torch.Tensor, caches: list | None = None
    ) -> torch.Tensor:
        """One iteration s_i = R(A([s_{i-1}, e])). state, embedded (B, T, D)."""
        x = self.adapter(torch.cat([state, embedded], dim=-1))  # (B, T, D): the input re-injected
        for j, block in enumerate(self.core):
            x = block(x, cache=None if caches is None else caches[j])
        return x

    def forward_features(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
        n_iterations: int | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) -> final-normed hidden states (B, T, d_model). n_iterations: r for this call
        (default config.n_iterations; a cache is made for that r)."""
        c = self.config
        check_tokens(tokens, c.vocab_size)
        if padding_mask is not None:
            raise ValueError("Huginn's attention has no padding support here: batch prompts of equal length")
        r = c.n_iterations if n_iterations is None else n_iterations
        if r < 1:
            raise ValueError(f"n_iterations must be >= 1, got {r}")
        if cache is not None:
            cache.check(self, tokens.shape[0])
        if cache is not None and r != c.n_iterations:
            raise ValueError(
                f"this cache holds {c.n_iterations} core iterations; decode with that many, not {r}"
            )
        layers = None if cache is None else list(cache)
        x = self.tok_embed(tokens)  # (B, T, D)
        for i, block in enumerate(self.prelude):
            x = block(x, cache=None if layers is None else layers[i])
        embedded = x
        state = self.initial_state(embedded)  # (B, T, D)
        offset = c.n_prelude
        for i in range(r):
            if c.backprop_depth is not None and i == r - c.backprop_depth and torch.is_grad_enabled():
                state = state.detach()  # truncated backprop: earlier iterations get no gradient
            state = self.core_step(
                state, embedded, None if layers is None else layers[offset : offset + c.n_core]
            )
            offset += c.n_core
        x = state
        for block in self.coda:
            x = block(x, cache=None if layers is None else layers[offset])
            offset += 1
        if cache is not None:
            cache.advance(tokens.shape[1])
        return self.norm(x)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
        n_iterations: int | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) long -> logits (B, T, vocab_size), after r = n_iterations core passes."""
        features = self.forward_features(
            tokens, cache=cache, padding_mask=padding_mask, n_iterations=n_iterations
        )
        return self.forward_head(features)
