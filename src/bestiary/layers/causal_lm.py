"""The language-model shell around a stack of blocks: embed tokens, run the blocks, norm, project.

    tokens (B, T) -> tok_embed (B, T, D) -> blocks[0..L-1] (B, T, D) -> norm -> lm_head -> (B, T, vocab)

Mamba, RWKV, xLSTM, RetNet, Griffin, Jamba: the language models of the stateful and attention-zoo
families differ only in their blocks (which mixer, which MLP, in what pattern). The shell around
the blocks is this one class, so a model file builds its blocks and nothing else:

    class Mamba(CausalLM):
        def __init__(self, config):
            super().__init__(config, prenorm_blocks(config, lambda i: MambaMixer(...), mlp=None))

(`layers.block.prenorm_blocks`: config.n_layers pre-norm Blocks, a mixer per layer, a SwiGLU MLP of
config.d_ff by default or none with mlp=None.)

`config` needs vocab_size, d_model, and may have norm ("rmsnorm" by default), norm_eps,
tie_embeddings (True by default), max_seq_len (None: no limit, as for a recurrent model), and two
conventions of the Gemma family: embed_scale (multiply embeddings by sqrt(d_model)) and
logit_soft_cap (logits -> cap * tanh(logits / cap), which bounds them smoothly).

Decoding follows the token-mixer contract (`bestiary.layers.mixer`): `init_cache(batch)` is a
`Cache` of the blocks' caches (a KVCache for attention, a RecurrentState for a recurrence). A
recurrent state that goes inf/NaN raises `NonFiniteStateError` naming the block it happened in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from bestiary.layers.checks import check_shape, check_tokens
from bestiary.layers.kv_cache import Cache
from bestiary.layers.norms import make_norm
from bestiary.layers.state import NonFiniteStateError


class CausalLM(nn.Module):
    """tokens (B, T) long -> logits (B, T, vocab_size), over any stack of causal blocks.

    blocks: modules mapping (B, T, D) -> (B, T, D) with `forward(x, *, cache=None)` and
    `init_cache(batch)` (a `Block`, or a model's own block class). A mixer with its own
    initialisation defines `init_weights()`, which runs after the default (see reset_parameters).
    """

    def __init__(self, config: Any, blocks: Sequence[nn.Module]):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.blocks = nn.ModuleList(blocks)
        self.norm = make_norm(getattr(c, "norm", "rmsnorm"), c.d_model, getattr(c, "norm_eps", 1e-5))
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        self.reset_parameters()
        if getattr(c, "tie_embeddings", True):  # one matrix both reads and writes tokens
            self.lm_head.weight = self.tok_embed.weight

    def reset_parameters(self) -> None:
        """GPT-2's default, N(0, 0.02) for every matrix and embedding and zero biases; then each
        submodule with an `init_weights()` method (an SSM's A and dt, a gate's bias) sets its own."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for module in self.modules():
            if module is not self and callable(getattr(module, "init_weights", None)):
                module.init_weights()

    def tie_weights(self) -> None:
        """Make lm_head share tok_embed's matrix again (after loading weights with assign=True)."""
        if getattr(self.config, "tie_embeddings", True):
            self.lm_head.weight = self.tok_embed.weight

    def init_cache(self, batch: int = 1) -> Cache:
        """An empty decoding cache: one per block (KV cache or fixed-size state), and the count of
        positions seen."""
        return Cache([block.init_cache(batch) for block in self.blocks], owner=self, batch=batch)

    def forward_features(
        self, tokens: torch.Tensor, *, cache: Cache | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, T) -> final-normed hidden states (B, T, d_model) (the input of lm_head)."""
        c = self.config
        check_tokens(tokens, c.vocab_size)
        if padding_mask is not None:
            raise ValueError(
                f"{type(self).__name__} reads tokens left to right with a running state and cannot skip "
                "padding: batch prompts of equal length, or generate one prompt at a time"
            )
        start = 0 if cache is None else cache.length
        max_len = getattr(c, "max_seq_len", None)
        if max_len is not None and start + tokens.shape[1] > max_len:
            raise ValueError(f"positions up to {start + tokens.shape[1]} exceed max_seq_len={max_len}")
        if cache is not None:
            cache.check(self, tokens.shape[0])
            if len(cache.layers) != len(self.blocks):
                raise ValueError(
                    f"this cache has {len(cache.layers)} layers, the model {len(self.blocks)}: it was made by "
                    "another model; use model.init_cache(batch)"
                )
        x = self.tok_embed(tokens)  # (B, T, d_model)
        if getattr(c, "embed_scale", False):  # Gemma: embeddings tied to the head are small; scale up
            x = x * math.sqrt(c.d_model)
        for i, block in enumerate(self.blocks):
            try:
                x = block(x) if cache is None else block(x, cache=cache[i])
            except NonFiniteStateError as error:
                raise NonFiniteStateError(f"blocks.{i}: {error}") from None
        if cache is not None:
            cache.advance(tokens.shape[1])
        return self.norm(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, d_model) -> logits (B, T, vocab_size)."""
        logits = self.lm_head(features)
        cap = getattr(self.config, "logit_soft_cap", None)
        if cap is not None:  # Gemma 2, Griffin: smooth bound to (-cap, cap)
            logits = cap * torch.tanh(logits / cap)
        return logits

    def forward(
        self, tokens: torch.Tensor, *, cache: Cache | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, T) long -> logits (B, T, vocab_size)."""
        return self.forward_head(self.forward_features(tokens, cache=cache, padding_mask=padding_mask))


def check_sequence(x: torch.Tensor, d_model: int, name: str = "x") -> None:
    """A mixer's input must be (B, T, d_model): a clear error instead of a matmul shape error."""
    check_shape(x, "B T D", name=name, D=d_model)
