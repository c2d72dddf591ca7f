"""T5-style encoder-decoder transformer (`encoder_decoder`; preset `t5_small`).

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

Each layer is the one `Block` of `bestiary.layers`; a decoder block adds a `cross_mixer`
(`CrossAttention` over the encoder output) between its causal self-attention and its MLP. The
catalog has no `t5` entry, so this is registered as `encoder_decoder`, a reference architecture
outside the catalog:

    model = bestiary.build("t5_small")                 # 60,506,624 parameters, as transformers' T5
    logits = model(src_tokens, tgt_tokens, src_mask)   # (B, S), (B, T) -> (B, T, vocab)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import (
    Block,
    CrossAttention,
    MultiHeadAttention,
    RelativePositionBias,
    check_tokens,
    make_mlp,
    make_norm,
)
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32128
    d_model: int = 512
    n_layers: int = 6  # encoder layers
    n_decoder_layers: int | None = option(None, min=1)  # None = n_layers
    n_heads: int = 8
    head_dim: int = 64
    d_ff: int = 2048
    num_buckets: int = option(32, min=2)  # relative-position buckets
    max_distance: int = option(128, min=1)  # distances beyond this share the last bucket
    dropout: float = 0.1
    norm_eps: float = 1e-6
    mlp: str = "relu"
    tie_embeddings: bool = True
    attn_impl: str = "sdpa"  # "sdpa" or "manual" (the readable path; same math)


class Stack(nn.Module):
    """A T5 encoder or decoder stack: blocks sharing one relative-position bias, then a final norm."""

    def __init__(self, c: Config, n_layers: int, decoder: bool):
        super().__init__()
        self.decoder = decoder
        self.relative_bias = RelativePositionBias(
            c.n_heads, c.num_buckets, c.max_distance, bidirectional=not decoder
        )

        def attention(cls: type[MultiHeadAttention], **kwargs) -> MultiHeadAttention:
            # scale=1.0: T5 does not divide the scores by sqrt(head_dim) (its init absorbs it)
            return cls(
                c.d_model, c.n_heads, head_dim=c.head_dim, bias=False, dropout=c.dropout, scale=1.0,
                manual=c.attn_impl == "manual", **kwargs,
            )  # fmt: skip

        self.blocks = nn.ModuleList(
            Block(
                c.d_model,
                # one bias table for the whole stack: each layer calls the stack's module
                attention(MultiHeadAttention, causal=decoder, score_bias=self.relative_bias.forward),
                make_mlp(c.mlp, c.d_model, c.d_ff, bias=False, dropout=c.dropout),
                cross_mixer=attention(CrossAttention) if decoder else None,
                norm="rmsnorm",
                norm_eps=c.norm_eps,
                dropout=c.dropout,
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
    ) -> torch.Tensor:
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, mask=mask, context=context, context_mask=context_mask)
        return self.drop(self.norm(x))


T5_SMALL = dict(
    vocab_size=32128, d_model=512, n_layers=6, n_heads=8, head_dim=64, d_ff=2048, tie_embeddings=True
)


@register(
    "encoder_decoder",
    family="transformer",
    config=Config,
    summary="T5-style encoder-decoder transformer: relative position buckets, RMSNorm, cross-attention.",
    paper="Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
    year=2019,
    arxiv="1910.10683",
    input_kind="custom",
    in_catalog=False,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, head_dim=8, d_ff=64, dropout=0.0),
    presets={
        "t5_small": Preset(
            T5_SMALL, params=60_506_624, source="t5-small: transformers T5ForConditionalGeneration (tied)"
        )
    },
    outputs="logits (B, T, vocab_size) of the target given the source",
)
class EncoderDecoder(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = c = config
        self.num_features = c.d_model
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
                for attn in (block.mixer, block.cross_mixer):
                    if attn is None:
                        continue
                    nn.init.normal_(attn.q_proj.weight, std=(c.d_model * c.head_dim) ** -0.5)
                    nn.init.normal_(attn.k_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.v_proj.weight, std=c.d_model**-0.5)
                    nn.init.normal_(attn.out_proj.weight, std=(c.n_heads * c.head_dim) ** -0.5)
                nn.init.normal_(block.mlp.up.weight, std=c.d_model**-0.5)
                nn.init.normal_(block.mlp.down.weight, std=c.d_ff**-0.5)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor | None = None) -> torch.Tensor:
        """src (B, S) long, src_mask (B, S) 1 = real -> memory (B, S, d_model)."""
        check_tokens(src, self.config.vocab_size, name="src")
        return self.encoder(self.embed(src), mask=src_mask)

    def decode_features(
        self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tgt (B, T) long (starting with the decoder start token) + memory -> decoder states (B, T, d_model)."""
        check_tokens(tgt, self.config.vocab_size, name="tgt")
        return self.decoder(self.embed(tgt), context=memory, context_mask=src_mask)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Decoder states (B, T, d_model) -> logits (B, T, vocab)."""
        if self.config.tie_embeddings:  # keep logits at the scale the shared embedding expects
            features = features * self.config.d_model**-0.5
        return self.lm_head(features)

    def decode(
        self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tgt (B, T) long + memory -> logits (B, T, vocab)."""
        return self.forward_head(self.decode_features(tgt, memory, src_mask))

    def forward_features(
        self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The decoder's final states (B, T, d_model), before the output head."""
        return self.decode_features(tgt, self.encode(src, src_mask), src_mask)

    def forward(
        self, src: torch.Tensor, tgt: torch.Tensor, src_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.forward_head(self.forward_features(src, tgt, src_mask))

    @staticmethod
    def example_input(config: Config, batch: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
        """(source ids (B, 12), target ids (B, 8))."""
        return (
            torch.randint(0, config.vocab_size, (batch, 12)),
            torch.randint(0, config.vocab_size, (batch, 8)),
        )


# ------------------------------------------------ transformers checkpoint names -> ours (bestiary.llm.convert)
# T5ForConditionalGeneration: layer.0 is self-attention, decoder layer.1 the cross-attention
# (EncDecAttention), the last layer the ReLU FFN; block 0 alone holds the stack's relative bias.
HF_T5_NAMES = [
    (r"shared\.weight", r"embed.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (
        r"(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.weight",
        r"\1.relative_bias.embedding.weight",
    ),
    (
        r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.SelfAttention\.([qkv])\.weight",
        r"\1.blocks.\2.mixer.\3_proj.weight",
    ),
    (
        r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.SelfAttention\.o\.weight",
        r"\1.blocks.\2.mixer.out_proj.weight",
    ),
    (r"(encoder|decoder)\.block\.(\d+)\.layer\.0\.layer_norm\.weight", r"\1.blocks.\2.mixer_norm.weight"),
    (
        r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.([qkv])\.weight",
        r"decoder.blocks.\1.cross_mixer.\2_proj.weight",
    ),
    (
        r"decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.o\.weight",
        r"decoder.blocks.\1.cross_mixer.out_proj.weight",
    ),
    (r"decoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"decoder.blocks.\1.cross_norm.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wi\.weight", r"encoder.blocks.\1.mlp.up.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.wo\.weight", r"encoder.blocks.\1.mlp.down.weight"),
    (r"encoder\.block\.(\d+)\.layer\.1\.layer_norm\.weight", r"encoder.blocks.\1.mlp_norm.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.wi\.weight", r"decoder.blocks.\1.mlp.up.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.wo\.weight", r"decoder.blocks.\1.mlp.down.weight"),
    (r"decoder\.block\.(\d+)\.layer\.2\.layer_norm\.weight", r"decoder.blocks.\1.mlp_norm.weight"),
    (r"(encoder|decoder)\.final_layer_norm\.weight", r"\1.norm.weight"),
]
