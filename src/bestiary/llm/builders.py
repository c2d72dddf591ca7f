"""Published model sizes as plain builder functions (random initialisation, no weights).

Thin aliases of registry presets: `bert_base()` is `bestiary.build("bert_base")` (a preset of
`encoder_only`), `t5_small()` is `bestiary.build("t5_small")` (of `encoder_decoder`), `gpt2()` is
`bestiary.build("gpt2")` (of `decoder_only`). Each reproduces the reference implementation's parameter count exactly (tests/llm check it
against `transformers` models built on the meta device):

    gpt2()      124,439,808   GPT2LMHeadModel (tied head)     Radford et al., 2019
    bert_base() 109,482,240   BertModel incl. pooler          Devlin et al., 2018, arXiv:1810.04805
    t5_small()   60,506,624   T5ForConditionalGeneration      Raffel et al., 2019, arXiv:1910.10683
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bestiary.registry import build


def gpt2(**overrides: Any) -> nn.Module:
    """GPT-2 small (124M) as `decoder_only` (= bestiary.build("gpt2", **overrides))."""
    return build("gpt2", **overrides)


def bert_base(**overrides: Any) -> nn.Module:
    """BERT-base (uncased vocabulary 30522, 12 layers, d 768, 12 heads, d_ff 3072, pooler)."""
    return build("bert_base", **overrides)


def t5_small(**overrides: Any) -> nn.Module:
    """T5-small (vocabulary 32128, 6+6 layers, d 512, 8 heads of 64, d_ff 2048, tied embeddings)."""
    return build("t5_small", **overrides)
