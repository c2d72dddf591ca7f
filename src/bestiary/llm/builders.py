"""Published model sizes as plain builder functions (random initialisation, no weights).

The registry only holds catalog names, so BERT and T5 (building blocks of the `transformer`
family, not catalog entries) are built here; GPT-2 is also the `gpt2` preset of `decoder_only`.
Each reproduces the reference implementation's parameter count exactly (tests/llm check it
against `transformers` models built on the meta device):

    gpt2()      124,439,808   GPT2LMHeadModel (tied head)     Radford et al., 2019
    bert_base() 109,482,240   BertModel incl. pooler          Devlin et al., 2018, arXiv:1810.04805
    t5_small()   60,506,624   T5ForConditionalGeneration      Raffel et al., 2019, arXiv:1910.10683
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bestiary.models.transformer.encoder import Encoder, EncoderConfig
from bestiary.models.transformer.encoder_decoder import EncoderDecoder, EncoderDecoderConfig


def gpt2(**overrides: Any) -> nn.Module:
    """GPT-2 small (124M) as `decoder_only` (= bestiary.build("gpt2", **overrides))."""
    from bestiary.registry import build

    return build("gpt2", **overrides)


def bert_base(**overrides: Any) -> Encoder:
    """BERT-base (uncased vocabulary 30522, 12 layers, d 768, 12 heads, d_ff 3072, pooler)."""
    return Encoder(EncoderConfig(**overrides))


def t5_small(**overrides: Any) -> EncoderDecoder:
    """T5-small (vocabulary 32128, 6+6 layers, d 512, 8 heads of 64, d_ff 2048, tied embeddings)."""
    return EncoderDecoder(EncoderDecoderConfig(**overrides))
