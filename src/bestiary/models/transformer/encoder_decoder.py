"""T5-style encoder-decoder transformer (a building block; `t5_small` lives in bestiary.llm).

"Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer" (Raffel et al.,
2019, arXiv:1910.10683), on the original encoder-decoder of "Attention Is All You Need" (Vaswani
et al., 2017, arXiv:1706.03762).

The encoder reads the source bidirectionally; the decoder generates the target left to right,
attending causally to itself and fully to the encoder output (cross-attention). T5's particular
choices, all reproduced so that `transformers` weights map 1:1 (`bestiary.llm.convert`):
  - no position embeddings: a learned bias per (head, bucketed relative distance), computed once
    per stack and added to every layer's self-attention scores (`RelativePositionBias`);
  - pre-norm RMSNorm ("T5LayerNorm", eps 1e-6), no biases anywhere, ReLU feed-forward;
  - attention scores are NOT divided by sqrt(head_dim) (the initialisation absorbs it);
  - one embedding matrix shared by encoder, decoder and (when tied) the output head, in which case
    the decoder output is scaled by d_model^-0.5 before the head.

Not a registry entry (the catalog has no `t5`): `bestiary.llm.t5_small()` or
`EncoderDecoder(EncoderDecoderConfig(...))`.

    logits = model(src_tokens, tgt_tokens, src_mask)   # (B, S), (B, T) -> (B, T, vocab)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import RelativePositionBias, TransformerBlock, check_shape, make_norm, padding_mask


@dataclass
class EncoderDecoderConfig:
    vocab_size: int = 32128
    d_model: int = 512
    n_layers: int = 6  # encoder layers
    n_decoder_layers: int | None = None  # None = n_layers
    n_heads: int = 8
    head_dim: int = 64
    d_ff: int = 2048
    num_buckets: int = 32  # relative-position buckets
    max_distance: int = 128  # distances beyond this share the last bucket
    dropout: float = 0.1
    norm_eps: float = 1e-6
    mlp: str = "relu"
    tie_embeddings: bool = True


class Stack(nn.Module):
    """A T5 encoder or decoder stack: blocks sharing one relative-position bias, then a final norm."""

    def __init__(self, c: EncoderDecoderConfig, n_layers: int, decoder: bool):
        super().__init__()
        self.decoder = decoder
        self.relative_bias = RelativePositionBias(
            c.n_heads, c.num_buckets, c.max_distance, bidirectional=not decoder
        )
        self.blocks = nn.ModuleList(
            TransformerBlock(
                c.d_model,
                c.n_heads,
                c.d_ff,
                head_dim=c.head_dim,
                norm="rmsnorm",
                norm_eps=c.norm_eps,
                mlp=c.mlp,
                bias=False,
                dropout=c.dropout,
                cross_attention=decoder,
                attn_scale=1.0,
            )
            for _ in range(n_layers)
        )
        self.norm = make_norm("rmsnorm", c.d_model, c.norm_eps)
        self.drop = nn.Dropout(c.dropout)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        context_mask: torch.Tensor | None = None,
        manual: bool = False,
    ) -> torch.Tensor:
        T = x.shape[1]
        bias = self.relative_bias(T, T)  # (1, H, T, T), the same for every layer
        x = self.drop(x)
        for block in self.blocks:
            x = block(
                x,
                mask=mask,
                is_causal=self.decoder,
                attn_bias=bias,
                context=context,
                context_mask=context_mask,
                manual=manual,
            )
        return self.drop(self.norm(x))


class EncoderDecoder(nn.Module):
    def __init__(self, config: EncoderDecoderConfig):
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.d_model)
        self.encoder = Stack(c, c.n_layers, decoder=False)
        self.decoder = Stack(c, c.n_decoder_layers or c.n_layers, decoder=True)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self._init_weights()

    def _init_weights(self) -> None:
        """T5's initialisation: std 1/sqrt(fan-in), except the query projection, which is also
        divided by sqrt(head_dim) — this is where the missing 1/sqrt(d) of the scores went.
        Without it the unscaled scores start far too large and the softmax saturates."""
        c = self.config
        nn.init.normal_(self.embed.weight, std=1.0)
        if not c.tie_embeddings:
            nn.init.normal_(self.lm_head.weight, std=c.d_model**-0.5)
        for stack in (self.encoder, self.decoder):
            nn.init.normal_(stack.relative_bias.embedding.weight, std=c.d_model**-0.5)
            for block in stack.blocks:
                for attn in (block.attn, block.cross_attn):
                    if attn is None:
                        continue
                    nn.init.normal_(attn.q_proj.weight, std=(c.d_model * c.head_dim) ** -0.5)
                    nn.init.normal_(attn.k_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.v_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.out_proj.weight, std=(c.n_heads * c.head_dim) ** -0.5)
                nn.init.normal_(block.mlp.up.weight, std=c.d_model**-0.5)
                nn.init.normal_(block.mlp.down.weight, std=c.d_ff**-0.5)

    def encode(
        self, src: torch.Tensor, src_mask: torch.Tensor | None = None, manual: bool = False
    ) -> torch.Tensor:
        """src (B, S) long, src_mask (B, S) 1 = real -> memory (B, S, d_model)."""
        check_shape(src, "B S", name="src")
        mask = None if src_mask is None else padding_mask(src_mask)  # (B, 1, 1, S)
        return self.encoder(self.embed(src), mask=mask, manual=manual)

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        manual: bool = False,
    ) -> torch.Tensor:
        """tgt (B, T) long (starting with the decoder start token) + memory -> logits (B, T, vocab)."""
        check_shape(tgt, "B T", name="tgt")
        context_mask = None if src_mask is None else padding_mask(src_mask)
        h = self.decoder(self.embed(tgt), context=memory, context_mask=context_mask, manual=manual)
        if self.config.tie_embeddings:  # keep logits at the scale the shared embedding expects
            h = h * self.config.d_model**-0.5
        return self.lm_head(h)

    def forward(
        self,
        src: torch.Tensor,
        tgt: torch.Tensor,
        src_mask: torch.Tensor | None = None,
        manual: bool = False,
    ) -> torch.Tensor:
        return self.decode(tgt, self.encode(src, src_mask, manual), src_mask, manual)
