"""BERT-style bidirectional transformer encoder (a building block; `bert_base` lives in bestiary.llm).

"BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (Devlin et al.,
2018, arXiv:1810.04805). Every token sees every other token (no causal mask), so the encoder
suits classification, retrieval and masked-token prediction, not left-to-right generation.

Layout (matching `transformers.BertModel`, so weights map 1:1, see `bestiary.llm.convert`):
  embeddings: token + learned position + segment ("token type"), then LayerNorm and dropout;
  n_layers post-norm blocks: x = LN(x + attn(x)); x = LN(x + FFN_gelu(x));
  pooler: tanh(Linear(hidden of the first, [CLS], token)).

Not a registry entry (the catalog has no `bert`): build it with `bestiary.llm.bert_base()` or
`Encoder(EncoderConfig(...))`.

    model = Encoder(EncoderConfig(vocab_size=100, d_model=64, n_layers=2, n_heads=4, d_ff=128))
    hidden = model(tokens, attention_mask)        # (B, T) -> (B, T, d_model)
    pooled = model.pool(hidden)                   # (B, d_model)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import LearnedPositions, TransformerBlock, check_shape, padding_mask


@dataclass
class EncoderConfig:
    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_seq_len: int = 512
    type_vocab_size: int = 2  # segments (sentence A / B)
    dropout: float = 0.1
    norm_eps: float = 1e-12
    activation: str = "gelu"  # BERT uses the exact (erf) GELU
    pooler: bool = True


class EncoderEmbeddings(nn.Module):
    """token + position + segment embeddings, LayerNorm, dropout: (B, T) -> (B, T, d_model)."""

    def __init__(self, c: EncoderConfig):
        super().__init__()
        self.tok = nn.Embedding(c.vocab_size, c.d_model)
        self.pos = LearnedPositions(c.max_seq_len, c.d_model)
        self.segment = nn.Embedding(c.type_vocab_size, c.d_model)
        self.norm = nn.LayerNorm(c.d_model, eps=c.norm_eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, tokens: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(tokens)
        x = self.tok(tokens) + self.pos(tokens.shape[1]) + self.segment(token_type_ids)  # (B, T, d_model)
        return self.drop(self.norm(x))


class Encoder(nn.Module):
    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = c = config
        self.embed = EncoderEmbeddings(c)
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                norm="layernorm",
                norm_eps=c.norm_eps,
                mlp=c.activation,
                bias=True,
                dropout=c.dropout,
                pre_norm=False,  # BERT is post-norm: the norm comes after each residual sum
            )
            for _ in range(c.n_layers)
        )
        self.pooler = nn.Linear(c.d_model, c.d_model) if c.pooler else None
        self.apply(_init_bert)

    def forward(
        self,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        manual: bool = False,
    ) -> torch.Tensor:
        """tokens (B, T) long, attention_mask (B, T) 1 = real token -> hidden states (B, T, d_model)."""
        check_shape(tokens, "B T", name="tokens")
        mask = None
        if attention_mask is not None:
            check_shape(attention_mask, "B T", name="attention_mask", B=tokens.shape[0], T=tokens.shape[1])
            mask = padding_mask(attention_mask)  # (B, 1, 1, T): nobody attends to padding
        x = self.embed(tokens, token_type_ids)
        for block in self.blocks:
            x = block(x, mask=mask, manual=manual)
        return x

    def pool(self, hidden: torch.Tensor) -> torch.Tensor:
        """BERT's pooled output: tanh(W h_[CLS] + b), (B, T, d) -> (B, d)."""
        if self.pooler is None:
            raise ValueError("this encoder was built with pooler=False")
        return torch.tanh(self.pooler(hidden[:, 0]))


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the real tokens' hidden states (sentence-transformers pooling): (B, T, d) -> (B, d)."""
    weights = attention_mask.to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)


def _init_bert(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
