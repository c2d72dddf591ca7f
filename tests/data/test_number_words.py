"""The number-words task: words read back to the right number, the split is disjoint and seeded."""

from __future__ import annotations

import pytest

from bestiary.data import make_number_words
from bestiary.data.number_words import number_to_words

UNITS = {
    w: i
    for i, w in enumerate(
        [
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
    )
}
TENS = {
    w: 10 * i
    for i, w in enumerate(["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"], 2)
}


def parse(words: list[str]) -> int:
    """An independent reader of English number words (the oracle for number_to_words)."""
    total = 0
    for w in words:
        if w == "hundred":
            total *= 100
        elif w != "and":
            total += UNITS.get(w, 0) + TENS.get(w, 0)
    return total


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "zero"),
        (7, "seven"),
        (17, "seventeen"),
        (40, "forty"),
        (42, "forty two"),
        (300, "three hundred"),
        (305, "three hundred and five"),
        (742, "seven hundred and forty two"),
        (999, "nine hundred and ninety nine"),
    ],
)
def test_known_numbers(n, text):
    assert " ".join(number_to_words(n)) == text


def test_every_number_reads_back_and_is_unique():
    seen = set()
    for n in range(1000):
        words = number_to_words(n)
        assert 1 <= len(words) <= 5
        assert parse(words) == n
        seen.add(tuple(words))
    assert len(seen) == 1000


@pytest.mark.parametrize("bad", [-1, 1000, 3.0, "7"])
def test_out_of_range_raises(bad):
    with pytest.raises(ValueError):
        number_to_words(bad)


def test_task_vocab_split_and_round_trip():
    task = make_number_words(test_fraction=0.2, seed=0)
    assert task.vocab[:5] == ("<pad>", "<bos>", "<eos>", "<sep>", "<cls>")
    assert (task.pad, task.bos, task.eos, task.sep, task.cls) == (0, 1, 2, 3, 4)
    assert len(task) == 5 + 30 + 10 == len(set(task.vocab))
    assert len(task.test) == 200 and len(task.train) == 800
    assert sorted(task.train + task.test) == list(range(1000))
    for n in (0, 13, 742, 999):
        assert task.decode(task.target(n)) == str(n)
        assert task.decode(task.source(n)) == " ".join(number_to_words(n))
        assert all(task.vocab[i].isdigit() for i in task.target(n))


def test_split_is_seeded():
    a, b, c = make_number_words(seed=0), make_number_words(seed=0), make_number_words(seed=1)
    assert a.test == b.test and a.train == b.train
    assert a.test != c.test
    with pytest.raises(ValueError):
        make_number_words(test_fraction=1.0)
