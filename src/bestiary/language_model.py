"""`build_lm`: turn any causal sequence backbone into a language model.

tokens (B, T) -> embedding (B, T, d_model) -> backbone (B, T, H) -> final norm -> logits (B, T, vocab)

Every sequence model in the registry maps (B, T, in_dim) to (B, T, out_dim) and exposes `out_dim`,
so one wrapper serves Mamba, an LSTM and a transformer alike: that is what makes the
architecture shoot-outs of the curriculum a one-line change.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bestiary import registry
from bestiary.layers.checks import check_shape


class LanguageModel(nn.Module):
    def __init__(self, backbone: nn.Module, vocab_size: int, d_model: int, max_seq_len: int | None = None):
        super().__init__()
        self.vocab_size = vocab_size
        self.max_seq_len = max_seq_len
        self.embed = nn.Embedding(vocab_size, d_model)
        self.backbone = backbone
        self.norm = nn.LayerNorm(backbone.out_dim)
        self.head = nn.Linear(backbone.out_dim, vocab_size, bias=False)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None) -> Any:
        """Logits (B, T, vocab); with `targets` (B, T), returns (logits, mean cross-entropy)."""
        check_shape(tokens, "B T", name="tokens")
        if tokens.dtype != torch.long:
            raise TypeError(f"tokens must be torch.long token ids, got {tokens.dtype}")
        if self.max_seq_len is not None and tokens.shape[1] > self.max_seq_len:
            raise ValueError(f"sequence of {tokens.shape[1]} tokens exceeds max_seq_len={self.max_seq_len}")
        hidden = self.backbone(self.embed(tokens))  # (B, T, H)
        logits = self.head(self.norm(hidden))  # (B, T, vocab)
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def build_lm(backbone: str, vocab_size: int, *, tiny: bool = False, **overrides: Any) -> LanguageModel:
    """A language model around a registered causal sequence backbone.

    `build_lm("mamba", vocab_size=65, d_model=128, n_layers=4)`. The backbone's `in_dim` is set
    to its `d_model` (the token embedding width) unless given.
    """
    card, preset = registry.resolve(backbone)
    if card.input_kind != "sequence":
        raise ValueError(f"build_lm needs a sequence backbone; {card.name!r} takes {card.input_kind} input")
    if not card.causal:
        raise ValueError(
            f"{card.name!r} is not causal (each position sees the future), so it cannot be trained "
            "as a next-token language model. Causal sequence models: "
            + ", ".join(n for n in registry.list_models() if registry.card(n).causal)
        )
    config = card.make_config(tiny=tiny, preset=preset, **overrides)
    if "in_dim" in card.options and "in_dim" not in overrides and hasattr(config, "d_model"):
        config.in_dim = config.d_model
    model = card.model_cls(config)
    return LanguageModel(model, vocab_size, config.in_dim, getattr(config, "max_seq_len", None))
