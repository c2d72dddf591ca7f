"""`build_lm`: turn any causal sequence backbone into a language model.

tokens (B, T) -> embedding (B, T, d_model) -> backbone (B, T, H) -> final norm -> logits (B, T, vocab)

Every sequence model in the registry maps (B, T, in_dim) to (B, T, num_features), so one wrapper
serves Mamba, an LSTM and a transformer alike: that is what makes the architecture shoot-outs of
the curriculum a one-line change. Generation is incremental whenever the backbone has an
`init_cache` (the token-mixer contract of `bestiary.layers.mixer`): a KV cache for attention, a
fixed-size state for recurrent and state-space layers.

Registered models that already take tokens and are causal (`decoder_only`, ...) are language models
already: `build_lm` builds them with the given `vocab_size`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bestiary import registry
from bestiary.layers.checks import check_tokens


class LanguageModel(nn.Module):
    def __init__(self, backbone: nn.Module, vocab_size: int, d_model: int, max_seq_len: int | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.backbone = backbone
        self.num_features = backbone.num_features
        self.norm = nn.LayerNorm(backbone.num_features)
        self.head = nn.Linear(backbone.num_features, vocab_size, bias=False)

    def init_cache(self, batch: int = 1) -> Any:
        """The backbone's decoding cache; the backbone advances it as it reads tokens."""
        if not callable(getattr(self.backbone, "init_cache", None)):
            raise NotImplementedError(
                f"{type(self.backbone).__name__} has no incremental decoding (init_cache)"
            )
        return self.backbone.init_cache(batch)

    def forward_features(self, tokens: torch.Tensor, *, cache: Any = None) -> torch.Tensor:
        """tokens (B, T) long -> final-normed hidden states (B, T, num_features)."""
        check_tokens(tokens, self.vocab_size)
        start = 0 if cache is None else len(cache)
        if self.max_seq_len is not None and start + tokens.shape[1] > self.max_seq_len:
            raise ValueError(
                f"positions up to {start + tokens.shape[1]} exceed max_seq_len={self.max_seq_len}"
            )
        x = self.embed(tokens)  # (B, T, d_model)
        hidden = self.backbone(x) if cache is None else self.backbone(x, cache=cache)  # (B, T, H)
        return self.norm(hidden)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)  # (B, T, vocab)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None, *, cache: Any = None) -> Any:
        """Logits (B, T, vocab); with `targets` (B, T), returns (logits, mean cross-entropy)."""
        logits = self.forward_head(self.forward_features(tokens, cache=cache))
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def build_lm(backbone: str, vocab_size: int, *, tiny: bool = False, **overrides: Any) -> nn.Module:
    """A language model around a registered causal sequence backbone.

    `build_lm("mamba", vocab_size=65, d_model=128, n_layers=4)`. The backbone's `in_dim` is set
    to its `d_model` (the token embedding width) unless given. A causal model that already takes
    tokens (`build_lm("decoder_only", vocab_size=65)`) is built as it is, with that vocabulary.
    """
    card, preset = registry.resolve(backbone)
    if card.input_kind not in ("sequence", "tokens"):
        raise ValueError(f"build_lm needs a sequence backbone; {card.name!r} takes {card.input_kind} input")
    if not card.causal:
        causal_names = ", ".join(n for n in registry.list_models() if registry.card(n).causal)
        raise ValueError(
            f"{card.name!r} is not causal (each position sees the future), so it cannot be trained "
            f"as a next-token language model. Causal models: {causal_names}"
        )
    if card.input_kind == "tokens":
        return registry.build(backbone, tiny=tiny, vocab_size=vocab_size, **overrides)
    config = card.make_config(tiny, preset, **overrides)
    if "in_dim" in card.options and "in_dim" not in overrides and hasattr(config, "d_model"):
        config.in_dim = config.d_model
    model = card.model_cls(config)
    return LanguageModel(model, vocab_size, config.in_dim, getattr(config, "max_seq_len", None))
