"""Byte-level BPE: GPT-2 ids vs tiktoken (loaded offline from the same files), training vs a
brute-force re-counting oracle, round trips (hypothesis), special tokens, JSON persistence."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bestiary.tokenizers import (
    GPT2_SPLIT_PATTERN,
    BPETokenizer,
    CharTokenizer,
    WordTokenizer,
    gpt2_files,
    gpt2_tokenizer,
    load_tokenizer,
)
from bestiary.tokenizers.bpe import train_bpe_naive


@pytest.fixture(scope="module")
def gpt2():
    return gpt2_tokenizer()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    tiktoken = pytest.importorskip("tiktoken")
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    encoder_json, vocab_bpe = gpt2_files()
    ranks = data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json))
    return tiktoken.Encoding(
        "gpt2_offline",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def mixed_corpus(n_chars: int = 20_000, seed: int = 0) -> str:
    """Several kilobytes of English, other scripts, emoji, digits, odd whitespace and random code points."""
    rng = random.Random(seed)
    pieces = [
        "To be, or not to be, that is the question: ",
        "Whether 'tis nobler in the mind to suffer ",
        "Ça va très bien, merci! Größe, Straße, naïve café. ",
        "Привет, как дела? Ελληνικά κείμενα. ",
        "日本語のテキストと漢字。中文文本测试。한국어 텍스트. ",
        "العربية نص ",
        "emoji 🙂🙂🙃 👩‍👩‍👧 🇫🇷 ",
        "numbers 3.14159 2024-01-01 1,000,000 ",
        "it's they're we've I'm you'll he'd ",
        "tabs\tand\r\nnewlines\n\n\n   spaces    ",
        "code: def f(x): return x**2  # comment\n",
    ]
    out: list[str] = []
    size = 0
    while size < n_chars:
        if rng.random() < 0.15:
            piece = "".join(
                chr(
                    rng.choice(
                        [rng.randint(32, 0x2FF), rng.randint(0x3000, 0x9FFF), rng.randint(0x1F300, 0x1FAFF)]
                    )
                )
                for _ in range(rng.randint(1, 8))
            )
        else:
            piece = rng.choice(pieces)
        out.append(piece)
        size += len(piece)
    return "".join(out)


def test_gpt2_matches_tiktoken_on_mixed_unicode_corpus(gpt2, tiktoken_gpt2):
    text = mixed_corpus()
    assert len(text.encode("utf-8")) > 20_000
    ours = gpt2.encode(text)
    assert ours == tiktoken_gpt2.encode(text)
    assert gpt2.decode(ours) == text


def test_gpt2_known_ids_and_vocab(gpt2, tiktoken_gpt2):
    assert gpt2.vocab_size == 50257 == tiktoken_gpt2.n_vocab
    assert gpt2.encode("<|endoftext|>", allowed_special="all") == [50256]
    # every token's bytes agree with tiktoken's table
    for i in range(0, 50256, 97):
        assert gpt2.token_bytes(i) == tiktoken_gpt2.decode_single_token_bytes(i)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_gpt2_matches_tiktoken_and_round_trips_on_arbitrary_text(gpt2, tiktoken_gpt2, text):
    ids = gpt2.encode_ordinary(text)
    assert ids == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(ids) == text


@pytest.mark.parametrize("pattern", [GPT2_SPLIT_PATTERN, None])
def test_training_equals_bruteforce_recount(pattern):
    text = mixed_corpus(3000, seed=1) + " aaaa aaa aa abab abab " * 5
    tok = BPETokenizer.train(text, vocab_size=256 + 60, pattern=pattern)
    assert tok.merges == train_bpe_naive(text, 256 + 60, pattern)
    assert len(tok.merges) == 60


def test_wikipedia_example_first_merge_is_most_frequent_pair():
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=259, pattern=None)
    a, b = ord("a"), ord("b")
    assert tok.merges[0] == (a, a, 256)  # "aa" occurs 4 times in the byte sequence
    assert tok.decode(tok.encode("aaabdaaabac")) == "aaabdaaabac"
    assert len(tok.encode("aaabdaaabac")) < len("aaabdaaabac")
    assert tok.vocab[256] == b"aa" and b in tok.vocab


def test_training_stops_when_nothing_repeats():
    tok = BPETokenizer.train("abcdef", vocab_size=300, pattern=None)
    assert tok.merges == []


@pytest.fixture(scope="module")
def trained():
    return BPETokenizer.train(
        mixed_corpus(8000, seed=2), vocab_size=400, special_tokens=["<|endoftext|>", "<|pad|>"]
    )


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_trained_round_trip_arbitrary_unicode(trained, text):
    assert trained.decode(trained.encode_ordinary(text)) == text


def test_special_tokens(trained):
    eot = trained.special_tokens["<|endoftext|>"]
    assert eot == 400 and trained.vocab_size == 402
    ids = trained.encode("hi<|endoftext|>there", allowed_special={"<|endoftext|>"})
    assert eot in ids and trained.decode(ids) == "hi<|endoftext|>there"
    with pytest.raises(ValueError, match="not allowed"):
        trained.encode("hi<|endoftext|>")
    with pytest.raises(ValueError, match="unknown special token"):
        trained.encode("hi", allowed_special={"<|nope|>"})
    plain = trained.encode("hi<|endoftext|>", disallowed_special=())
    assert eot not in plain and trained.decode(plain) == "hi<|endoftext|>"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        trained.decode([10_000])


def test_add_special_tokens_extends_vocab(trained):
    tok = BPETokenizer.from_dict(trained.to_dict())
    added = tok.add_special_tokens(["<|user|>", "<|assistant|>"])
    assert added == {"<|user|>": 402, "<|assistant|>": 403} and tok.vocab_size == 404
    assert tok.encode("<|user|>hi", allowed_special="all")[0] == 402
    assert trained.vocab_size == 402  # the original is untouched


def test_json_save_load_round_trip(trained, tmp_path):
    path = tmp_path / "bpe.json"
    trained.save(path)
    assert path.read_text().startswith("{")  # JSON, not pickle
    again = load_tokenizer(path)
    text = mixed_corpus(2000, seed=3)
    assert again.encode(text) == trained.encode(text)
    assert again.merges == trained.merges and again.special_tokens == trained.special_tokens


def test_bad_arguments():
    with pytest.raises(ValueError, match="vocab_size"):
        BPETokenizer.train("abc", vocab_size=10)
    with pytest.raises(TypeError):
        BPETokenizer().encode(b"bytes")  # type: ignore[arg-type]


def test_char_tokenizer(tmp_path):
    tok = CharTokenizer.train("hello world")
    assert tok.vocab_size == len(set("hello world"))
    assert tok.decode(tok.encode("hello")) == "hello"
    assert tok.encode("dehl") == sorted(tok.encode("dehl"))  # ids follow sorted characters
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("xyz")
    tok.save(tmp_path / "c.json")
    assert load_tokenizer(tmp_path / "c.json").encode("hello") == tok.encode("hello")
    with_unk = CharTokenizer.train("abc", unk="?")
    assert with_unk.decode(with_unk.encode("abz")) == "ab?"


def test_word_tokenizer(tmp_path):
    text = "the cat sat on the mat. The cat! the end"
    tok = WordTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text  # lossless on its training text
    small = WordTokenizer.train(text, max_vocab=4)  # <unk> + 3 most frequent pieces: " ", "the", "cat"
    assert small.vocab_size == 4
    assert small.tokens[1:] == [t for t, _ in Counter(small.split(text)).most_common(3)]
    assert small.encode("dog")[0] == 0  # out of vocabulary -> <unk>
    small.save(tmp_path / "w.json")
    assert load_tokenizer(tmp_path / "w.json").tokens == small.tokens
