"""Word-level tokenizer: words, punctuation and whitespace runs, with a frequency-capped vocabulary.

The classic NLP tokenizer (word2vec, early seq2seq). Sequences are short, but the vocabulary
explodes (every inflection is its own token) and any word not seen in training becomes `<unk>`:
information is lost, which is exactly what subword tokenizers (BPE) fix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import regex

__all__ = ["WORD_PATTERN", "WordTokenizer"]

# a word (letters/digits/apostrophes inside), one punctuation mark, or a whitespace run: the
# pieces concatenate back to the text, so decoding is lossless for in-vocabulary text
WORD_PATTERN = r"\p{L}[\p{L}\p{N}']*|\p{N}+|\s+|[^\s\p{L}\p{N}]"


class WordTokenizer:
    """`tokens[0]` is `<unk>`; the rest are the most frequent pieces of the training text."""

    UNK = "<unk>"

    def __init__(self, tokens: Iterable[str], pattern: str = WORD_PATTERN):
        self.tokens = [self.UNK] + [t for t in tokens if t != self.UNK]
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        self.pattern = pattern
        self._split = regex.compile(pattern)

    @classmethod
    def train(cls, text: str, max_vocab: int | None = None, pattern: str = WORD_PATTERN) -> WordTokenizer:
        """Keep the `max_vocab - 1` most frequent pieces (all of them if None); ties by first seen."""
        if max_vocab is not None and max_vocab < 2:
            raise ValueError(f"max_vocab must be >= 2 (<unk> plus one word), got {max_vocab}")
        counts = Counter(regex.findall(pattern, text))
        keep = counts.most_common(None if max_vocab is None else max_vocab - 1)
        return cls([t for t, _ in keep], pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def split(self, text: str) -> list[str]:
        return self._split.findall(text)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(piece, 0) for piece in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} out of range [0, {len(self.tokens)})")
            out.append(self.tokens[i])
        return "".join(out)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"type": "word", "tokens": self.tokens[1:], "pattern": self.pattern})
        )

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        data = json.loads(Path(path).read_text())
        if data.get("type") != "word":
            raise ValueError(f"not a word tokenizer file (type={data.get('type')!r})")
        return cls(data["tokens"], data["pattern"])
