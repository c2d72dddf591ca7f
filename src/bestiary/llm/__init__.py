"""Pretrained models in our own implementations, and weight conversion from `transformers`.

    model, tokenizer = bestiary.llm.load_smollm2()     # Llama (decoder_only), SmolLM2-135M-Instruct
    model, tokenizer = bestiary.llm.load_minilm()      # BERT encoder, all-MiniLM-L6-v2
    bert = bestiary.llm.bert_base(); t5 = bestiary.llm.t5_small()   # published sizes, random init

Everything loads offline from installed packages; converted checkpoints are cached as safetensors.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_smollm2": "bestiary.llm.smollm2",
    "smollm2_files": "bestiary.llm.smollm2",
    "load_minilm": "bestiary.llm.minilm",
    "sentence_embeddings": "bestiary.llm.minilm",
    "bert_base": "bestiary.llm.builders",
    "t5_small": "bestiary.llm.builders",
    "gpt2": "bestiary.llm.builders",
    "load_weights": "bestiary.llm.convert",
    "CheckpointMismatchError": "bestiary.llm.convert",
    "cache_dir": "bestiary.llm.cache",
    "apply_lora": "bestiary.llm.peft",
    "merge_adapters": "bestiary.llm.peft",
    "wrap_linears": "bestiary.llm.peft",
    "LoRALinear": "bestiary.llm.peft",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bestiary.llm' has no attribute {name!r}")
