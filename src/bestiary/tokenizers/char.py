"""Character-level tokenizer: one id per distinct character of a training text.

The simplest tokenizer (char-rnn, nanoGPT's Shakespeare): a tiny vocabulary (65-100 symbols) and
no unknown words, at the price of long sequences: every character costs a position of context.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bestiary.tokenizers.checks import load_tokenizer_file, require_fields, token_id_list

__all__ = ["CharTokenizer"]

FILE_WHAT = "a character tokenizer file (written by CharTokenizer.save)"


class CharTokenizer:
    """Maps each character to an id in sorted order. Unknown characters raise ValueError,
    unless `unk` names a character (it must be in the vocabulary) to use in their place."""

    def __init__(self, chars: Iterable[str], *, unk: str | None = None):
        chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in chars):
            raise ValueError("CharTokenizer vocabulary entries must be single characters")
        self.chars = sorted(set(chars))
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if unk is not None and unk not in self.stoi:
            raise ValueError(f"unk {unk!r} is not in the vocabulary")
        self.unk = unk

    @classmethod
    def train(cls, text: str, *, unk: str | None = None) -> CharTokenizer:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return cls(set(text) | ({unk} if unk else set()), unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            if self.unk is None:
                missing = sorted({c for c in text if c not in self.stoi})
                raise ValueError(f"characters not in the vocabulary: {missing[:10]!r}") from None
            u = self.stoi[self.unk]
            return [self.stoi.get(c, u) for c in text]

    def decode(self, ids: Any) -> str:
        """ids (an int, a list, a 1-D integer tensor or array) -> text; floats and ids outside
        0..vocab_size-1 are refused."""
        return "".join(self.chars[i] for i in token_id_list(ids, self.vocab_size))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "chars": self.chars, "unk": self.unk}))

    @classmethod
    def from_dict(cls, data: dict) -> CharTokenizer:
        """The tokenizer of a saved file's JSON. The ids are the positions in "chars", so the list
        must be exactly what `save` writes: distinct single characters in sorted order (loading
        anything else would quietly renumber the characters)."""
        if data.get("type") != "char":
            raise ValueError(f"its type is {data.get('type')!r}, not 'char'")
        require_fields(data, {"chars": list, "unk": (str, type(None))})
        chars = data["chars"]
        for i, c in enumerate(chars):
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"chars[{i}] is {c!r}, not a single character")
            if i and c <= chars[i - 1]:
                problem = "repeats" if c == chars[i - 1] else "is out of sorted order after"
                raise ValueError(
                    f"chars[{i}] {c!r} {problem} chars[{i - 1}] {chars[i - 1]!r}; ids would shift"
                )
        return cls(chars, unk=data["unk"])

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        """Read a file written by `save`, checking it (FileFormatError names the file)."""
        return load_tokenizer_file(path, FILE_WHAT, cls.from_dict)
