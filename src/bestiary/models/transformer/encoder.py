"""BERT-style bidirectional transformer encoder (`encoder_only`; preset `bert_base`).

"BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding" (Devlin et al.,
2018, arXiv:1810.04805). Every token sees every other token (no causal mask), so the encoder
suits classification, retrieval and masked-token prediction, not left-to-right generation.

Layout (matching `transformers.BertModel`, so weights map 1:1, see `bestiary.llm.convert`):
  embeddings: token + learned position + segment ("token type"), then LayerNorm and dropout;
  n_layers post-norm blocks: x = LN(x + attn(x)); x = LN(x + FFN_gelu(x));
  pooler: tanh(Linear(hidden of the first, [CLS], token)).

Each layer is the one `Block` of `bestiary.layers` with a bidirectional `MultiHeadAttention`
mixer and `pre_norm=False`. The catalog has no `bert` entry, so this is registered as
`encoder_only`, a reference architecture outside the catalog (its card says so):

    model = bestiary.build("encoder_only", vocab_size=100, d_model=64, n_layers=2, n_heads=4, d_ff=128)
    model = bestiary.build("bert_base")           # 109,482,240 parameters, as transformers' BertModel
    hidden = model(tokens, attention_mask)        # (B, T) -> (B, T, d_model)
    pooled = model.pool(hidden)                   # (B, d_model)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import Block, LearnedPositions, MultiHeadAttention, check_shape, check_tokens, make_mlp
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 30522
    d_model: int = 768
    n_layers: int = 12
    n_heads: int = 12
    d_ff: int = 3072
    max_seq_len: int = 512
    type_vocab_size: int = option(2, min=1)  # segments (sentence A / B)
    dropout: float = 0.1
    norm_eps: float = 1e-12
    mlp: str = "gelu"  # the FFN's activation; BERT uses the exact (erf) GELU
    pooler: bool = True
    attn_impl: str = "sdpa"  # "sdpa" or "manual" (the readable path; same math)


class EncoderEmbeddings(nn.Module):
    """token + position + segment embeddings, LayerNorm, dropout: (B, T) -> (B, T, d_model)."""

    def __init__(self, c: Config):
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


BERT_BASE = dict(vocab_size=30522, d_model=768, n_layers=12, n_heads=12, d_ff=3072, max_seq_len=512)


@register(
    "encoder_only",
    family="transformer",
    config=Config,
    summary="BERT-style bidirectional transformer encoder: post-norm blocks, learned positions, segments, pooler.",
    paper="BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    year=2018,
    arxiv="1810.04805",
    input_kind="tokens",
    in_catalog=False,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=32, dropout=0.0),
    presets={
        "bert_base": Preset(
            BERT_BASE, params=109_482_240, source="bert-base-uncased: transformers BertModel, pooler included"
        )
    },
    outputs="hidden states (B, T, d_model); pool(hidden) -> (B, d_model)",
)
class Encoder(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
        self.embed = EncoderEmbeddings(c)
        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                MultiHeadAttention(
                    c.d_model, c.n_heads, dropout=c.dropout, manual=c.attn_impl == "manual"
                ),  # bidirectional: every token sees every other
                make_mlp(c.mlp, c.d_model, c.d_ff, bias=True, dropout=c.dropout),
                norm="layernorm",
                norm_eps=c.norm_eps,
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
    ) -> torch.Tensor:
        """tokens (B, T) long, attention_mask (B, T) 1 = real token -> hidden states (B, T, d_model)."""
        check_tokens(tokens, self.config.vocab_size)
        if attention_mask is not None:  # nobody attends to padding
            check_shape(attention_mask, "B T", name="attention_mask", B=tokens.shape[0], T=tokens.shape[1])
        x = self.embed(tokens, token_type_ids)
        for block in self.blocks:
            x = block(x, mask=attention_mask)
        return x

    def forward_features(
        self, tokens: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The encoder has no head: its features are its hidden states (B, T, d_model)."""
        return self(tokens, attention_mask)

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


# ------------------------------------------------ transformers checkpoint names -> ours (bestiary.llm.convert)
# BertModel (post-norm): attention.output.LayerNorm is the norm after the attention residual, so it
# maps to mixer_norm; output.LayerNorm (after the FFN residual) to mlp_norm.
HF_BERT_NAMES = [
    (r"embeddings\.word_embeddings\.weight", r"embed.tok.weight"),
    (r"embeddings\.position_embeddings\.weight", r"embed.pos.weight"),
    (r"embeddings\.token_type_embeddings\.weight", r"embed.segment.weight"),
    (r"embeddings\.LayerNorm\.(weight|bias)", r"embed.norm.\1"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.(weight|bias)", r"blocks.\1.mixer.q_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.(weight|bias)", r"blocks.\1.mixer.k_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.(weight|bias)", r"blocks.\1.mixer.v_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.(weight|bias)", r"blocks.\1.mixer.out_proj.\2"),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.mixer_norm.\2"),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.(weight|bias)", r"blocks.\1.mlp.up.\2"),
    (r"encoder\.layer\.(\d+)\.output\.dense\.(weight|bias)", r"blocks.\1.mlp.down.\2"),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.(weight|bias)", r"blocks.\1.mlp_norm.\2"),
    (r"pooler\.dense\.(weight|bias)", r"pooler.\1"),
]
