"""Byte-level byte-pair encoding (BPE): training, encoding with special tokens, JSON save/load.

Papers: "Neural Machine Translation of Rare Words with Subword Units" (Sennrich, Haddow & Birch,
2016, arXiv:1508.07909) introduced BPE for text; "Language Models are Unsupervised Multitask
Learners" (GPT-2, Radford et al., 2019) made it *byte-level*: the base alphabet is the 256 byte
values of UTF-8, so every string is encodable and `decode(encode(s)) == s` for any Unicode text.

How it works:

1. **Pre-split** the text with a regular expression (GPT-2's pattern: contractions, words with an
   optional leading space, numbers, punctuation runs, whitespace). Merges never cross a chunk
   boundary, so "dog." and "dog!" share the token " dog".
2. **Train**: start from the bytes of every chunk, repeatedly find the most frequent adjacent pair
   of tokens and replace it by a new token, until the vocabulary has the requested size.
3. **Encode**: apply the learned merges to each chunk in the order they were learned (lowest rank
   first), exactly as training did.

Training is fast because it never re-counts: chunks are de-duplicated and weighted by frequency,
a dict holds every pair's count, an index maps each pair to the words containing it, and a heap
(with lazy deletion of stale entries) yields the most frequent pair. A merge touches only the words
that contain the merged pair. Ties between equally frequent pairs go to the smallest pair
`(left_id, right_id)`, so training is deterministic.

    tok = BPETokenizer.train(text, vocab_size=512, special_tokens=["<|endoftext|>"])
    ids = tok.encode("Hello<|endoftext|>", allowed_special="all")
    tok.save("tok.json"); tok = BPETokenizer.load("tok.json")     # plain JSON, never pickle
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex

__all__ = ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "BPETokenizer", "merge_pair", "train_bpe_naive"]

# GPT-2's pre-tokenizer (openai/gpt-2 encoder.py): 's 't 're 've 'm 'll 'd, words with an optional
# leading space, numbers, other symbols, and whitespace (a trailing space stays with the next word).
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# cl100k (GPT-4): case-insensitive contractions, numbers of at most 3 digits, newlines kept apart.
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

Pair = tuple[int, int]


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of `pair` in `ids` (left to right) by `new_id`."""
    out: list[int] = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if i < n - 1 and ids[i] == a and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _pair_counts(ids: list[int]) -> Counter[Pair]:
    return Counter(zip(ids, ids[1:]))


def train_bpe_naive(
    text: str, vocab_size: int, pattern: str | None = GPT2_SPLIT_PATTERN
) -> list[tuple[int, int, int]]:
    """The classic, slow BPE training loop (minbpe style): recount every pair of every chunk after
    each merge. Returns merges (a, b, new_id); ties go to the smallest pair, as in `BPETokenizer.train`.

    Kept as the readable reference: the tests check that the fast trainer learns exactly these
    merges, and benchmarks/bpe_train.py measures how much faster the fast one is.
    """
    chunks = regex.findall(pattern, text) if pattern else [text]
    ids = [list(chunk.encode("utf-8")) for chunk in chunks]
    merges: list[tuple[int, int, int]] = []
    for new_id in range(256, vocab_size):
        stats: Counter[Pair] = Counter()
        for chunk in ids:
            stats.update(_pair_counts(chunk))
        if not stats:
            break
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))
        if stats[pair] < 2:
            break
        merges.append((pair[0], pair[1], new_id))
        ids = [merge_pair(chunk, pair, new_id) for chunk in ids]
    return merges


class BPETokenizer:
    """A byte-level BPE tokenizer.

    Args:
        merges: ordered merges `(left_id, right_id, new_id)`; the position in the list is the rank.
        byte_ids: `byte_ids[b]` is the token id of the single byte `b` (identity for trained
            tokenizers; GPT-2's file numbers bytes in its own order).
        special_tokens: `{text: id}`, e.g. `{"<|endoftext|>": 50256}`; never produced by merges.
        pattern: the pre-split regular expression (`None` = no pre-split, the whole text is one chunk).
    """

    def __init__(
        self,
        merges: Iterable[tuple[int, int, int]] = (),
        byte_ids: list[int] | None = None,
        special_tokens: dict[str, int] | None = None,
        pattern: str | None = GPT2_SPLIT_PATTERN,
    ):
        self.byte_ids = list(range(256)) if byte_ids is None else [int(i) for i in byte_ids]
        if len(self.byte_ids) != 256 or len(set(self.byte_ids)) != 256:
            raise ValueError("byte_ids must hold 256 distinct token ids, one per byte value")
        self.merges = [(int(a), int(b), int(c)) for a, b, c in merges]
        self.ranks: dict[Pair, int] = {(a, b): r for r, (a, b, _) in enumerate(self.merges)}
        self.merged_id: dict[Pair, int] = {(a, b): c for a, b, c in self.merges}
        # id -> bytes, built in merge order (a merge only uses tokens that exist before it)
        self.vocab: dict[int, bytes] = {tid: bytes([b]) for b, tid in enumerate(self.byte_ids)}
        for a, b, c in self.merges:
            if a not in self.vocab or b not in self.vocab:
                raise ValueError(f"merge ({a}, {b}) -> {c} uses a token that no earlier merge created")
            self.vocab[c] = self.vocab[a] + self.vocab[b]
        self.special_tokens = dict(special_tokens or {})
        for text, tid in self.special_tokens.items():
            if tid in self.vocab:
                raise ValueError(
                    f"special token {text!r} reuses id {tid}, which is already a byte/merge token"
                )
        self.inverse_special = {tid: text for text, tid in self.special_tokens.items()}
        self.pattern = pattern
        self._split = regex.compile(pattern) if pattern else None
        self._cache: dict[str, list[int]] = {}  # chunk -> ids (text repeats words a lot)

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        special_tokens: Iterable[str] = (),
        pattern: str | None = GPT2_SPLIT_PATTERN,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn `vocab_size - 256` merges from `text`; special tokens get the ids after them.

        Stops early if no pair occurs at least twice (nothing left worth merging).
        """
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the byte alphabet), got {vocab_size!r}")
        split = regex.compile(pattern) if pattern else None
        chunks = split.findall(text) if split else [text]
        counts = Counter(chunks)  # unique chunk -> how many times it occurs
        words: list[list[int]] = [list(w.encode("utf-8")) for w in counts]
        freqs: list[int] = list(counts.values())

        # pair -> weighted count, and pair -> indices of the words where it (may) occur
        pair_count: dict[Pair, int] = {}
        where: dict[Pair, set[int]] = {}
        for wi, ids in enumerate(words):
            for pair, n in _pair_counts(ids).items():
                pair_count[pair] = pair_count.get(pair, 0) + n * freqs[wi]
                where.setdefault(pair, set()).add(wi)
        # max-heap via negated counts; ties -> smallest pair first. Entries go stale when a count
        # changes: we push the new count and skip popped entries that disagree with pair_count.
        heap = [(-n, pair) for pair, n in pair_count.items()]
        heapq.heapify(heap)

        merges: list[tuple[int, int, int]] = []
        next_id = 256
        while next_id < vocab_size and heap:
            neg, pair = heapq.heappop(heap)
            if pair_count.get(pair, 0) != -neg:
                continue  # stale entry
            if -neg < 2:
                break  # merging a pair seen once compresses nothing
            new_id = next_id
            next_id += 1
            merges.append((pair[0], pair[1], new_id))
            changed: set[Pair] = set()
            for wi in where.pop(pair):
                ids = words[wi]
                if len(ids) < 2:
                    continue
                new_ids = merge_pair(ids, pair, new_id)
                if len(new_ids) == len(ids):
                    continue  # index was stale: the pair no longer occurs in this word
                f = freqs[wi]
                # update counts by the difference between the word's old and new pairs
                old_pairs, new_pairs = _pair_counts(ids), _pair_counts(new_ids)
                for p, n in old_pairs.items():
                    pair_count[p] -= n * f
                    changed.add(p)
                for p, n in new_pairs.items():
                    pair_count[p] = pair_count.get(p, 0) + n * f
                    where.setdefault(p, set()).add(wi)
                    changed.add(p)
                words[wi] = new_ids
            pair_count.pop(pair, None)
            changed.discard(pair)
            for p in changed:
                n = pair_count[p]
                if n > 0:
                    heapq.heappush(heap, (-n, p))
                else:
                    del pair_count[p]
            if verbose:
                print(f"merge {len(merges)}: {pair} -> {new_id} ({-neg} occurrences)")
        specials = {s: next_id + i for i, s in enumerate(dict.fromkeys(special_tokens))}
        return cls(merges, special_tokens=specials, pattern=pattern)

    # ------------------------------------------------------------------------------------------
    # Encoding / decoding
    # ------------------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        """Number of ids (bytes + merges + special tokens); ids run from 0 to vocab_size - 1."""
        return max(list(self.vocab) + list(self.inverse_special)) + 1

    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is not None:
            return cached
        ids = [self.byte_ids[b] for b in chunk.encode("utf-8")]
        ranks = self.ranks
        while len(ids) >= 2:
            # the adjacent pair learned earliest (lowest rank) merges first, as in training
            best = min(zip(ids, ids[1:]), key=lambda p: ranks.get(p, float("inf")))
            if best not in ranks:
                break
            ids = merge_pair(ids, best, self.merged_id[best])
        if len(self._cache) < 200_000:
            self._cache[chunk] = ids
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode treating special-token strings as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        chunks = self._split.findall(text) if self._split else [text]
        out: list[int] = []
        for chunk in chunks:
            out.extend(self._encode_chunk(chunk))
        return out

    def encode(
        self,
        text: str,
        allowed_special: str | Iterable[str] = (),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Encode `text` to ids. Special tokens are only recognised when allowed.

        `allowed_special`: "all" or the special-token strings to turn into their ids. A special
        token that appears in the text without being allowed raises ValueError (like tiktoken):
        silently encoding "<|endoftext|>" as ordinary text is a classic prompt-injection bug.
        Pass `disallowed_special=()` to encode such text as ordinary characters instead.
        """
        allowed = set(self.special_tokens) if allowed_special == "all" else set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"unknown special token(s) {sorted(unknown)}; this tokenizer has {sorted(self.special_tokens)}"
            )
        disallowed = (
            set(self.special_tokens) - allowed if disallowed_special == "all" else set(disallowed_special)
        )
        for s in disallowed:
            if s in text:
                raise ValueError(
                    f"text contains the special token {s!r}, which is not allowed. Pass "
                    f"allowed_special={{{s!r}}} (or 'all') to encode it as one token, or "
                    "disallowed_special=() to encode it as plain text."
                )
        if not allowed:
            return self.encode_ordinary(text)
        # split on the allowed special tokens (longest first so "<|a|b|>" beats "<|a|")
        alternation = "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True))
        out: list[int] = []
        for part in regex.split(f"({alternation})", text):
            if part in allowed:
                out.append(self.special_tokens[part])
            elif part:
                out.extend(self.encode_ordinary(part))
        return out

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        parts = []
        for i in ids:
            i = int(i)
            if i in self.vocab:
                parts.append(self.vocab[i])
            elif i in self.inverse_special:
                parts.append(self.inverse_special[i].encode("utf-8"))
            else:
                raise ValueError(f"token id {i} is not in the vocabulary (size {self.vocab_size})")
        return b"".join(parts)

    def decode(self, ids: Iterable[int], errors: str = "replace") -> str:
        """ids -> text. A token sequence cut inside a multi-byte character decodes to U+FFFD."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_bytes(self, i: int) -> bytes:
        return self.decode_bytes([i])

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)}, special={list(self.special_tokens)})"

    # ------------------------------------------------------------------------------------------
    # Vocabulary extension and persistence
    # ------------------------------------------------------------------------------------------
    def add_special_tokens(self, tokens: Iterable[str]) -> dict[str, int]:
        """Append new special tokens (e.g. chat markers) after the current vocabulary; returns their ids.

        A model using this tokenizer needs its embedding and output matrices grown to the new
        `vocab_size` (new rows are untrained until fine-tuning).
        """
        added = {}
        for s in tokens:
            if not isinstance(s, str) or not s:
                raise ValueError(f"special tokens must be non-empty strings, got {s!r}")
            if s in self.special_tokens:
                continue
            tid = self.vocab_size
            self.special_tokens[s] = tid
            self.inverse_special[tid] = s
            added[s] = tid
        return added

    def to_dict(self) -> dict:
        return {
            "type": "byte_bpe",
            "version": 1,
            "pattern": self.pattern,
            "byte_ids": self.byte_ids,
            "merges": [list(m) for m in self.merges],
            "special_tokens": self.special_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict) -> BPETokenizer:
        if data.get("type") != "byte_bpe":
            raise ValueError(f"not a byte-level BPE tokenizer file (type={data.get('type')!r})")
        return cls(data["merges"], data["byte_ids"], data["special_tokens"], data["pattern"])

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (human-readable, safe to load: no pickle)."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def iter_tokens(self, text: str) -> Iterator[bytes]:
        """The byte string of each token of `text` (handy to show how text was cut)."""
        for i in self.encode_ordinary(text):
            yield self.vocab[i]
