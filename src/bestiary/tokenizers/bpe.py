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
from typing import Any

import regex

from bestiary.tokenizers.checks import (
    as_token_id,
    load_tokenizer_file,
    require_fields,
    special_token_list,
    token_id_list,
)

__all__ = ["GPT2_SPLIT_PATTERN", "GPT4_SPLIT_PATTERN", "BPETokenizer", "merge_pair", "train_bpe_naive"]

# GPT-2's pre-tokenizer (openai/gpt-2 encoder.py): 's 't 're 've 'm 'll 'd, words with an optional
# leading space, numbers, other symbols, and whitespace (a trailing space stays with the next word).
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# cl100k (GPT-4): case-insensitive contractions, numbers of at most 3 digits, newlines kept apart.
GPT4_SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

Pair = tuple[int, int]
FILE_WHAT = "a byte-level BPE tokenizer file (written by BPETokenizer.save)"


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

    The tables are checked here, so a tokenizer file that was edited or corrupted is refused on
    load instead of decoding to the wrong text: every merge joins ids that already exist and
    creates a new id of its own (a merge that reused an id would overwrite that token's bytes),
    no pair is merged twice, special tokens have ids of their own, and the ids run from 0 to
    `vocab_size - 1` without gaps. Everything after `merges` is keyword-only: `byte_ids` and
    `special_tokens` swapped by position would otherwise fail far from the mistake.
    """

    def __init__(
        self,
        merges: Iterable[tuple[int, int, int]] = (),
        *,
        byte_ids: list[int] | None = None,
        special_tokens: dict[str, int] | None = None,
        pattern: str | None = GPT2_SPLIT_PATTERN,
    ):
        # id -> bytes, built in merge order (a merge only uses tokens that exist before it)
        byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if len(byte_ids) != 256:
            raise ValueError(f"byte_ids must hold 256 token ids, one per byte value, got {len(byte_ids)}")
        self.byte_ids = [as_token_id(tid, f"byte_ids[{byte}]") for byte, tid in enumerate(byte_ids)]
        self.vocab: dict[int, bytes] = {}
        for byte, tid in enumerate(self.byte_ids):
            if tid in self.vocab:
                raise ValueError(f"byte_ids gives id {tid} to both byte {self.vocab[tid][0]} and byte {byte}")
            self.vocab[tid] = bytes([byte])
        self.merges: list[tuple[int, int, int]] = []
        self.ranks: dict[Pair, int] = {}
        self.merged_id: dict[Pair, int] = {}
        for rank, merge in enumerate(merges):
            self._add_merge(rank, merge)
        self.special_tokens = self._checked_special_tokens(special_tokens)
        self.inverse_special = {tid: text for text, tid in self.special_tokens.items()}
        self._check_ids_are_contiguous()
        if pattern is not None and not isinstance(pattern, str):
            raise TypeError(
                f"pattern must be a regular expression string or None, got {type(pattern).__name__}"
            )
        self.pattern = pattern
        try:
            self._split = regex.compile(pattern) if pattern else None
        except regex.error as err:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression ({err})") from err
        self._cache: dict[str, list[int]] = {}  # chunk -> ids (text repeats words a lot)

    def _add_merge(self, rank: int, merge: Iterable[int]) -> None:
        """Check merge number `rank` against the tokens made so far, then record it."""
        triple = list(merge) if isinstance(merge, list | tuple) else None
        if triple is None or len(triple) != 3:
            raise ValueError(f"merge {rank} must be three ids (left, right, new), got {merge!r}")
        a, b, c = (
            as_token_id(x, f"merge {rank} {side}") for x, side in zip(triple, ("left", "right", "new"))
        )
        described = f"merge {rank} ({a}, {b}) -> {c}"
        for part in (a, b):
            if part not in self.vocab:
                raise ValueError(f"{described} uses id {part}, which no byte or earlier merge created")
        if c in self.vocab:
            raise ValueError(
                f"{described} reuses id {c}, which already stands for {self.vocab[c]!r}; "
                "every merge must create a new id"
            )
        if (a, b) in self.ranks:
            raise ValueError(f"{described} merges the same pair as merge {self.ranks[(a, b)]}")
        self.merges.append((a, b, c))
        self.ranks[(a, b)] = rank
        self.merged_id[(a, b)] = c
        self.vocab[c] = self.vocab[a] + self.vocab[b]

    def _checked_special_tokens(self, special_tokens: object) -> dict[str, int]:
        """`{text: id}` with non-empty texts and ids that neither bytes, merges nor each other use."""
        if special_tokens is None:
            return {}
        if not isinstance(special_tokens, dict):
            raise TypeError(
                f"special_tokens must be a dict {{text: id}}, e.g. {{'<|endoftext|>': 256}}, got "
                f"{type(special_tokens).__name__} {special_tokens!r}; to number a list of special tokens "
                "automatically, use BPETokenizer.train(..., special_tokens=[...]) or add_special_tokens([...])"
            )
        owner: dict[int, str] = {}
        for text, tid in special_tokens.items():
            if not isinstance(text, str) or not text:
                raise ValueError(f"special tokens must be non-empty strings, got {text!r}")
            tid = as_token_id(tid, f"the id of special token {text!r}")
            if tid in self.vocab:
                raise ValueError(
                    f"special token {text!r} reuses id {tid}, which is already a byte/merge token "
                    f"({self.vocab[tid]!r})"
                )
            if tid in owner:
                raise ValueError(f"special tokens {owner[tid]!r} and {text!r} share id {tid}")
            owner[tid] = text
        return {text: int(tid) for text, tid in special_tokens.items()}

    def _check_ids_are_contiguous(self) -> None:
        """Ids must be exactly 0..N-1: `vocab_size` and embedding rows assume it."""
        ids = set(self.vocab) | set(self.inverse_special)
        if ids and max(ids) != len(ids) - 1:
            gap = min(set(range(max(ids) + 1)) - ids)
            raise ValueError(
                f"token ids must run from 0 to {len(ids) - 1} without gaps, but id {gap} is unused "
                f"while the largest id is {max(ids)}"
            )

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text: str,
        vocab_size: int,
        *,
        special_tokens: Iterable[str] = (),
        pattern: str | None = GPT2_SPLIT_PATTERN,
        verbose: bool = False,
    ) -> BPETokenizer:
        """Learn `vocab_size - 256` merges from `text`; special tokens get the ids after them.

        Stops early if no pair occurs at least twice (nothing left worth merging).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the byte alphabet), got {vocab_size!r}")
        special_tokens = special_token_list(special_tokens, "special_tokens")
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
        """Number of ids (bytes + merges + special tokens); ids run from 0 to vocab_size - 1
        (the constructor checked that there are no gaps)."""
        return len(self.vocab) + len(self.special_tokens)

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

    def _special_set(self, value: str | Iterable[str], argument: str) -> set[str]:
        """`"all"` or a collection of special-token strings, as a set (a bare string such as
        "<|endoftext|>" would otherwise become the set of its characters)."""
        if value == "all":
            return set(self.special_tokens)
        if isinstance(value, str):
            raise TypeError(
                f"{argument} must be 'all' or a set of special tokens, got the string {value!r}; "
                f"wrap it in a set: {argument}={{{value!r}}}"
            )
        return set(special_token_list(value, argument))

    def encode(
        self,
        text: str,
        *,
        allowed_special: str | Iterable[str] = (),
        disallowed_special: str | Iterable[str] = "all",
    ) -> list[int]:
        """Encode `text` to ids. Special tokens are only recognised when allowed.

        `allowed_special`: "all" or the special-token strings to turn into their ids. A special
        token that appears in the text without being allowed raises ValueError (like tiktoken):
        silently encoding "<|endoftext|>" as ordinary text is a classic prompt-injection bug.
        Pass `disallowed_special=()` to encode such text as ordinary characters instead.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        allowed = self._special_set(allowed_special, "allowed_special")
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(
                f"unknown special token(s) {sorted(unknown)}; this tokenizer has {sorted(self.special_tokens)}"
            )
        disallowed = self._special_set(disallowed_special, "disallowed_special")
        if disallowed_special == "all":
            disallowed -= allowed
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

    def decode_bytes(self, ids: Any) -> bytes:
        """ids (an int, a list, a 1-D integer tensor or array) -> the bytes they stand for."""
        parts = []
        for i in token_id_list(ids, self.vocab_size):
            special = self.inverse_special.get(i)
            parts.append(self.vocab[i] if special is None else special.encode("utf-8"))
        return b"".join(parts)

    def decode(self, ids: Any, *, errors: str = "replace") -> str:
        """ids -> text. A token sequence cut inside a multi-byte character decodes to U+FFFD.

        Float tensors are refused (TypeError), as are ids outside 0..vocab_size-1 (ValueError).
        """
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
        for s in special_token_list(tokens, "add_special_tokens"):
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
        """The tokenizer of `to_dict`'s output; ValueError/TypeError if the tables are inconsistent."""
        if data.get("type") != "byte_bpe":
            raise ValueError(f"its type is {data.get('type')!r}, not 'byte_bpe'")
        require_fields(
            data, {"merges": list, "byte_ids": list, "special_tokens": dict, "pattern": (str, type(None))}
        )
        if data.get("version", 1) != 1:
            raise ValueError(f"it is format version {data['version']!r}; this code reads version 1")
        return cls(
            data["merges"],
            byte_ids=data["byte_ids"],
            special_tokens=data["special_tokens"],
            pattern=data["pattern"],
        )

    def save(self, path: str | Path) -> None:
        """Write the tokenizer as JSON (human-readable, safe to load: no pickle)."""
        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path) -> BPETokenizer:
        """Read a file written by `save`, checking its tables (FileFormatError names the file)."""
        return load_tokenizer_file(path, FILE_WHAT, cls.from_dict)

    def iter_tokens(self, text: str) -> Iterator[bytes]:
        """The byte string of each token of `text` (handy to show how text was cut)."""
        for i in self.encode_ordinary(text):
            yield self.vocab[i]
