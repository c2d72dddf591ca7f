"""TTT-E2E: a sliding-window transformer that keeps training on its context, by next-token
prediction, while it reads it; the initial weights are meta-learned end to end for that.

Paper: "End-to-End Test-Time Training for Long Context" (Tandon, Dalal, Li, Koceja, Rød, Buchanan,
Wang, Leskovec, Koyejo, Hashimoto, Guestrin, McCaleb, Choi & Sun, 2025, arXiv:2512.23675).

Long-context modelling as continual learning. Attention sees only a sliding window; what falls out
of it is not lost but *compressed into the weights*: every mini-batch of b tokens, the MLPs of the
last blocks take one gradient step on the language-modelling loss of that mini-batch,

    W_{i+1} = W_i - inner_lr * grad_W  CE(model(tokens of mini-batch i; W_i), next tokens)

and mini-batch i + 1 is read with W_{i+1}. So the hidden state of this "RNN" is the fast MLP weights
(plus the window's keys and values). End to end: training differentiates through these inner steps
(gradients of gradients, `create_graph=True`), so the outer loss learns an initialisation W_0 that
is good *to be trained* on the context, as in MAML. Each sequence in a batch gets its own fast
weights (per-example gradients), so batch rows never interact.

Decoding: tokens of an unfinished mini-batch are read with W_i; when a mini-batch completes, its
keys/values are dropped and the mini-batch is re-read with gradients on to take the step (the same
numbers as the whole-sequence forward, which the tests check).

Simplified: one inner gradient step (plain SGD, a fixed inner_lr) per mini-batch; the updated MLPs
are SwiGLUs in the last `ttt_layers` blocks (the paper: the last quarter); no other changes to the
transformer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import transformer_block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.checks import check_tokens
from bestiary.layers.kv_cache import Cache
from bestiary.layers.norms import make_norm
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    sliding_window: int = option(64, min=1)  # attention looks this many positions back
    rope_theta: float = 10000.0
    ttt_layers: int = option(1, min=1)  # the last ttt_layers blocks' MLPs learn at test time
    mini_batch_size: int = option(16, min=2)  # tokens per inner gradient step (>= 2: one next-token pair)
    inner_lr: float = option(0.01, gt=0.0)  # step size of the inner (test-time) SGD
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-6
    tie_embeddings: bool = True


class FastSwiGLU(nn.Module):
    """A SwiGLU whose weights are passed in, one set per sequence: (B, d_ff, D), (B, d_ff, D),
    (B, D, d_ff). Its own parameters are the initial weights W_0 (meta-learned)."""

    def __init__(self, d_model: int, d_ff: int):
        super().__init__()
        self.gate = nn.Parameter(torch.zeros(d_ff, d_model))
        self.up = nn.Parameter(torch.zeros(d_ff, d_model))
        self.down = nn.Parameter(torch.zeros(d_model, d_ff))

    def init_weights(self) -> None:
        for weight in (self.gate, self.up, self.down):
            nn.init.normal_(weight, std=0.02)

    def initial(self, batch: int) -> list[torch.Tensor]:
        """W_0 for each of `batch` sequences (a view: the outer gradient flows back to W_0)."""
        return [w.expand(batch, -1, -1) for w in (self.gate, self.up, self.down)]

    @staticmethod
    def run(x: torch.Tensor, weights: list[torch.Tensor]) -> torch.Tensor:
        gate, up, down = weights
        hidden = F.silu(torch.einsum("btd,bfd->btf", x, gate)) * torch.einsum(
            "btd,bfd->btf", x, up
        )  # (B, T, d_ff)
        return torch.einsum("btf,bdf->btd", hidden, down)


class FastBlock(nn.Module):
    """x -> x + attention(norm(x)) -> x + fast_mlp(norm(x); weights): a transformer block whose MLP
    weights are the sequence's fast weights."""

    def __init__(self, config: Config):
        super().__init__()
        c = config
        head_dim = c.d_model // c.n_heads
        self.mixer_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.mixer = MultiHeadAttention(
            c.d_model,
            c.n_heads,
            bias=False,
            causal=True,
            window=c.sliding_window,
            rope=RotaryEmbedding(head_dim, theta=c.rope_theta),
            manual=True,  # the readable attention path: it has a double backward (gradients of the inner step)
        )
        self.mlp_norm = make_norm(c.norm, c.d_model, c.norm_eps)
        self.mlp = FastSwiGLU(c.d_model, c.d_ff)

    def init_cache(self, batch: int) -> object:
        return self.mixer.init_cache(batch)

    def forward(self, x: torch.Tensor, *, cache: object, weights: list[torch.Tensor]) -> torch.Tensor:
        x = x + self.mixer(self.mixer_norm(x), cache=cache)
        return x + self.mlp.run(self.mlp_norm(x), weights)


class TTTE2ECache(Cache):
    """The attention layers' KV caches, plus each sequence's fast weights and the tokens of the
    mini-batch being read (needed for its gradient step when it completes)."""

    def __init__(self, layers: list[object], batch: int, owner: object):
        super().__init__(layers, owner=owner, batch=batch)
        self.fast_weights: list[list[torch.Tensor]] | None = None  # None: still the initial W_0
        self.pending = torch.zeros(batch, 0, dtype=torch.long)


@register(
    "ttt_e2e",
    family="recurrent",
    config=Config,
    summary="Sliding-window transformer that trains its last MLPs on the context at test time (meta-learned init).",
    paper="End-to-End Test-Time Training for Long Context",
    year=2025,
    arxiv="2512.23675",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, sliding_window=4, mini_batch_size=4),
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(lambda c: c.ttt_layers <= c.n_layers, "ttt_layers={ttt_layers} must be <= n_layers={n_layers}")
    ],
)
class TTTE2E(CausalLM):
    def __init__(self, config: Config):
        c = config
        head_dim = c.d_model // c.n_heads
        static = [
            transformer_block(
                c.d_model,
                c.n_heads,
                c.d_ff,
                window=c.sliding_window,
                rope=RotaryEmbedding(head_dim, theta=c.rope_theta),
                norm=c.norm,
                norm_eps=c.norm_eps,
            )
            for _ in range(c.n_layers - c.ttt_layers)
        ]
        super().__init__(config, static + [FastBlock(c) for _ in range(c.ttt_layers)])

    def init_cache(self, batch: int = 1) -> TTTE2ECache:
        return TTTE2ECache([block.init_cache(batch) for block in self.blocks], batch, owner=self)

    def _read(self, tokens: torch.Tensor, cache: TTTE2ECache, fast: list[list[torch.Tensor]]) -> torch.Tensor:
        """tokens (B, L) after the cached positions -> final-normed features (B, L, D), with these fast weights."""
        x = self.tok_embed(tokens)
        fast_weights = iter(fast)
        for block, layer_cache in zip(self.blocks, cache.layers):
            if isinstance(block, FastBlock):
                x = block(x, cache=layer_cache, weights=next(fast_weights))
            else:
                x = block(x, cache=layer_cache)
        return self.norm(x)

    def forward_features(
        self,
        tokens: torch.Tensor,
        *,
        cache: TTTE2ECache | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_tokens(tokens, self.config.vocab_size)
        if padding_mask is not None:
            raise ValueError("TTTE2E trains on its context as it reads it and cannot skip padding")
        if cache is not None and not isinstance(cache, TTTE2ECache):
            raise ValueError("this cache was made by another model: use model.init_cache(batch)")
        if cache is not None:
            cache.check(self, tokens.shape[0])
        B, T = tokens.shape
        state = (
            self.init_cache(B) if cache is None else cache
        )  # the whole-sequence forward reads in mini-batches too
        if state.pending.shape[0] != B:
            raise ValueError(
                f"this cache was made for batch {state.pending.shape[0]}, the tokens have batch {B}"
            )
        outer_grad = torch.is_grad_enabled()
        if state.fast_weights is None:  # made here, in the caller's grad mode: W_0 stays differentiable
            state.fast_weights = [
                block.mlp.initial(B) for block in self.blocks if isinstance(block, FastBlock)
            ]
        size = self.config.mini_batch_size
        features, t = [], 0
        while t < T:
            done = state.pending.shape[1]  # tokens of this mini-batch already read
            L = min(size - done, T - t)
            mini_batch = torch.cat(
                [state.pending.to(tokens.device), tokens[:, t : t + L]], dim=1
            )  # (B, done + L)
            if done + L < size:  # unfinished: read the new tokens with the current fast weights
                features.append(self._read(tokens[:, t : t + L], state, state.fast_weights))
                state.pending = mini_batch
            else:  # complete: (re-)read the whole mini-batch with gradients, then take the inner step
                for layer_cache in state.layers:
                    layer_cache.crop(state.length - done)
                with torch.enable_grad():
                    # training: differentiate through the inner step (W_0 is meta-learned); decoding: a
                    # fresh leaf per weight, only to take the inner gradient
                    fast = [
                        [w if outer_grad else w.detach().requires_grad_() for w in weights]
                        for weights in state.fast_weights
                    ]
                    h = self._read(mini_batch, state, fast)  # (B, size, D)
                    logits = self.lm_head(h[:, :-1])  # (B, size - 1, vocab): predict tokens 1..size-1
                    # the mean loss of each sequence, summed over the batch: per-sequence gradients
                    loss = F.cross_entropy(logits.transpose(1, 2), mini_batch[:, 1:], reduction="sum") / (
                        size - 1
                    )
                    flat = [w for weights in fast for w in weights]
                    grads = iter(torch.autograd.grad(loss, flat, create_graph=outer_grad))
                step = self.config.inner_lr
                state.fast_weights = [[w - step * next(grads) for w in weights] for weights in fast]
                if not outer_grad:
                    state.fast_weights = [[w.detach() for w in weights] for weights in state.fast_weights]
                    h = h.detach()
                features.append(h[:, done:])
                state.pending = mini_batch[:, :0]
            state.length += L
            t += L
        return torch.cat(features, dim=1)
