"""Character-level tokenizer: one id per distinct character of a training text.

The simplest tokenizer (char-rnn, nanoGPT's Shakespeare): a tiny vocabulary (65-100 symbols) and
no unknown words, at the price of long sequences: every character costs a position of context.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CharTokenizer"]


class CharTokenizer:
    """Maps each character to an id in sorted order. Unknown characters raise ValueError,
    unless `unk` names a character (it must be in the vocabulary) to use in their place."""

    def __init__(self, chars: Iterable[str], unk: str | None = None):
        self.chars = sorted(set(chars))
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("CharTokenizer vocabulary entries must be single characters")
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        if unk is not None and unk not in self.stoi:
            raise ValueError(f"unk {unk!r} is not in the vocabulary")
        self.unk = unk

    @classmethod
    def train(cls, text: str, unk: str | None = None) -> CharTokenizer:
        return cls(set(text) | ({unk} if unk else set()), unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError:
            if self.unk is None:
                missing = sorted({c for c in text if c not in self.stoi})
                raise ValueError(f"characters not in the vocabulary: {missing[:10]!r}") from None
            u = self.stoi[self.unk]
            return [self.stoi.get(c, u) for c in text]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.chars):
                raise ValueError(f"token id {i} out of range [0, {len(self.chars)})")
            out.append(self.chars[i])
        return "".join(out)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"type": "char", "chars": self.chars, "unk": self.unk}))

    @classmethod
    def load(cls, path: str | Path) -> CharTokenizer:
        data = json.loads(Path(path).read_text())
        if data.get("type") != "char":
            raise ValueError(f"not a char tokenizer file (type={data.get('type')!r})")
        return cls(data["chars"], data["unk"])
