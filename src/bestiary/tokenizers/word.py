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
from typing import Any

import regex

from bestiary.tokenizers.checks import load_tokenizer_file, require_fields, token_id_list

__all__ = ["WORD_PATTERN", "WordTokenizer"]

# a word (letters/digits/apostrophes inside), one punctuation mark, or a whitespace run: the
# pieces concatenate back to the text, so decoding is lossless for in-vocabulary text
WORD_PATTERN = r"\p{L}[\p{L}\p{N}']*|\p{N}+|\s+|[^\s\p{L}\p{N}]"
FILE_WHAT = "a word tokenizer file (written by WordTokenizer.save)"


class WordTokenizer:
    """`tokens[0]` is `<unk>`; the rest are the most frequent pieces of the training text.

    Tokens must be distinct: a repeated token would get two ids, and encoding would only ever
    produce the second one.
    """

    UNK = "<unk>"

    def __init__(self, tokens: Iterable[str], *, pattern: str = WORD_PATTERN):
        if isinstance(tokens, str):
            raise TypeError(f"tokens takes a list of tokens, got the string {tokens!r}; wrap it in a list")
        self.tokens = [self.UNK] + [t for t in tokens if t != self.UNK]
        self.stoi: dict[str, int] = {}
        for i, token in enumerate(self.tokens):
            if not isinstance(token, str) or not token:
                raise ValueError(f"token {i} is {token!r}; tokens must be non-empty strings")
            if token in self.stoi:
                raise ValueError(f"token {token!r} appears twice (ids {self.stoi[token]} and {i})")
            self.stoi[token] = i
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a regular expression string, got {type(pattern).__name__}")
        self.pattern = pattern
        try:
            self._split = regex.compile(pattern)
        except regex.error as err:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({err})") from err

    @classmethod
    def train(cls, text: str, max_vocab: int | None = None, *, pattern: str = WORD_PATTERN) -> WordTokenizer:
        """Keep the `max_vocab - 1` most frequent pieces (all of them if None); ties by first seen."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if max_vocab is not None and max_vocab < 2:
            raise ValueError(f"max_vocab must be >= 2 (<unk> plus one word), got {max_vocab}")
        counts = Counter(regex.findall(pattern, text))
        keep = counts.most_common(None if max_vocab is None else max_vocab - 1)
        return cls([t for t, _ in keep], pattern=pattern)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def split(self, text: str) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self._split.findall(text)

    def encode(self, text: str) -> list[int]:
        return [self.stoi.get(piece, 0) for piece in self.split(text)]

    def decode(self, ids: Any) -> str:
        """ids (an int, a list, a 1-D integer tensor or array) -> text; floats and ids outside
        0..vocab_size-1 are refused."""
        return "".join(self.tokens[i] for i in token_id_list(ids, self.vocab_size))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(
            json.dumps({"type": "word", "tokens": self.tokens[1:], "pattern": self.pattern})
        )

    @classmethod
    def from_dict(cls, data: dict) -> WordTokenizer:
        """The tokenizer of a saved file's JSON: "tokens" holds ids 1, 2, ... (`<unk>` is id 0 and
        not listed; listing it would shift every later id by one)."""
        if data.get("type") != "word":
            raise ValueError(f"its type is {data.get('type')!r}, not 'word'")
        require_fields(data, {"tokens": list, "pattern": str})
        if cls.UNK in data["tokens"]:
            position = data["tokens"].index(cls.UNK)
            raise ValueError(
                f"tokens[{position}] is {cls.UNK!r}, which is implied as id 0 and must not be listed"
            )
        return cls(data["tokens"], pattern=data["pattern"])

    @classmethod
    def load(cls, path: str | Path) -> WordTokenizer:
        """Read a file written by `save`, checking it (FileFormatError names the file)."""
        return load_tokenizer_file(path, FILE_WHAT, cls.from_dict)
