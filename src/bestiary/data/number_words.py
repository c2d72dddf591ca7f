"""English number words -> digits: a tiny translation task ("seven hundred and forty two" -> "742").

Every number from 0 to 999 written in British-style words is a "sentence" of 1 to 5 words; its
translation is 1 to 3 digits. Word order partly follows digit order but not always ("seventeen"
is one word for two digits, "and" translates to nothing), so a model must learn rules, not a
word-by-word lookup. A seeded split holds out some numbers: a model tested on them must generalise.

    task = make_number_words(test_fraction=0.2, seed=0)
    task.words(742)                 # ['seven', 'hundred', 'and', 'forty', 'two']
    task.source(742)                # word ids, e.g. [27, 14, 5, 11, 30]
    task.target(742)                # digit ids of "742"
    task.decode(task.target(742))   # '742'
    task.train, task.test           # disjoint lists of numbers covering 0..999

One vocabulary holds the special tokens (`pad`, `bos`, `eos`, `sep`, `cls`: ids 0..4, in that
order), the 30 words and the 10 digits, so the same ids serve encoder, decoder and
encoder-decoder models.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["SPECIALS", "NumberWords", "make_number_words", "number_to_words"]

ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
SPECIALS = ("<pad>", "<bos>", "<eos>", "<sep>", "<cls>")
MAX_NUMBER = 999


def number_to_words(n: int) -> list[str]:
    """0 <= n <= 999 in words: 742 -> ['seven', 'hundred', 'and', 'forty', 'two']."""
    if not isinstance(n, int) or not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"n must be an int in 0..{MAX_NUMBER}, got {n!r}")
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest or not words:
        if words:
            words.append("and")
        if rest < 20:
            words.append(ONES[rest])
        else:
            words.append(TENS[rest // 10])
            if rest % 10:
                words.append(ONES[rest % 10])
    return words


@dataclass(frozen=True)
class NumberWords:
    """The task: a vocabulary (specials + words + digits) and a train/test split of 0..999."""

    vocab: tuple[str, ...]
    train: list[int]
    test: list[int]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_ids", {tok: i for i, tok in enumerate(self.vocab)})

    @property
    def ids(self) -> dict[str, int]:
        """token -> id."""
        return self._ids  # type: ignore[attr-defined]

    pad = property(lambda self: self.ids["<pad>"])
    bos = property(lambda self: self.ids["<bos>"])
    eos = property(lambda self: self.ids["<eos>"])
    sep = property(lambda self: self.ids["<sep>"])
    cls = property(lambda self: self.ids["<cls>"])

    def __len__(self) -> int:
        """The vocabulary size."""
        return len(self.vocab)

    def words(self, n: int) -> list[str]:
        return number_to_words(n)

    def source(self, n: int) -> list[int]:
        """The ids of n's words (1 to 5 tokens)."""
        return [self.ids[w] for w in number_to_words(n)]

    def target(self, n: int) -> list[int]:
        """The ids of n's digits (1 to 3 tokens, no leading zeros)."""
        return [self.ids[c] for c in str(n)]

    def decode(self, ids: list[int]) -> str:
        """Ids -> text: digits concatenated, words separated by spaces, specials dropped."""
        toks = [self.vocab[i] for i in ids if self.vocab[i] not in SPECIALS]
        return "".join(toks) if all(t.isdigit() for t in toks) else " ".join(toks)


def make_number_words(*, test_fraction: float = 0.2, seed: int = 0) -> NumberWords:
    """The number-words task with `test_fraction` of 0..999 held out (a seeded shuffle)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    words = sorted({w for n in range(MAX_NUMBER + 1) for w in number_to_words(n)})
    vocab = (*SPECIALS, *words, *"0123456789")
    numbers = list(range(MAX_NUMBER + 1))
    random.Random(seed).shuffle(numbers)
    n_test = round(test_fraction * len(numbers))
    return NumberWords(vocab=vocab, train=numbers[n_test:], test=numbers[:n_test])
