"""Multi-query associative recall (MQAR): the synthetic task that separates attention from recurrences.

From "Zoology: Measuring and Improving Recall in Efficient Language Models" (Arora, Eyuboglu et al.,
2023, arXiv:2312.04927). A sequence first lists `n_pairs` key-value pairs, then asks for some of
the keys again; after each queried key the model must output the value that was paired with it:

    context                         queries
    k3 v7  k0 v2  k5 v7  k1 v4  |   k5 v7  k3 v7  k1 v4  k0 v2
                                     ^ predict v7 here (the value after k5 in the context)

Keys are distinct within a sequence (ids 0 .. n_keys-1); values are drawn with replacement (ids
n_keys .. n_keys+n_values-1), so a value never says which key it belongs to. Only the positions
that hold a queried key are scored: their target is the value paired with that key, every other
target is `IGNORE` (-100, `torch.nn.functional.cross_entropy`'s ignore_index). The queried pairs
also stay in the sequence, so it reads as ordinary text for a language model (teacher forcing).

Attention solves it with one lookup (match the query against the keys, copy what follows); a
recurrent model must squeeze every pair into its fixed-size state before it knows which will be
asked, so its accuracy falls as n_pairs grows past what the state holds.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IGNORE", "make_mqar", "mqar_accuracy", "mqar_vocab_size"]

#: the target of every position that is not scored (cross_entropy's default ignore_index)
IGNORE = -100


def mqar_vocab_size(n_keys: int = 32, n_values: int = 32) -> int:
    """How many token ids `make_mqar` uses: keys 0..n_keys-1, then values."""
    return n_keys + n_values


def make_mqar(
    n: int = 256,
    n_pairs: int = 8,
    *,
    n_queries: int | None = None,
    n_keys: int = 32,
    n_values: int = 32,
    seed: int | tuple[int, ...] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` MQAR sequences of length 2 * (n_pairs + n_queries).

    n_pairs: key-value pairs in the context (distinct keys, so n_pairs <= n_keys).
    n_queries: how many of them are asked again, each once, in random order (None: all of them).
    seed: an int or a tuple (e.g. `(seed, step)`, a fresh batch per training step).

    Returns:
        tokens: int64 (n, T) with T = 2 * (n_pairs + n_queries); targets: int64 (n, T), the value
        paired with the key at each query position and IGNORE everywhere else.
    """
    for name, v in dict(n=n, n_pairs=n_pairs, n_keys=n_keys, n_values=n_values).items():
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if n_pairs > n_keys:
        raise ValueError(f"n_pairs ({n_pairs}) cannot exceed n_keys ({n_keys}): keys are distinct")
    n_queries = n_pairs if n_queries is None else n_queries
    if not 1 <= n_queries <= n_pairs:
        raise ValueError(f"n_queries must be in 1..n_pairs={n_pairs}, got {n_queries}")
    rng = np.random.default_rng(seed)
    keys = np.empty((n, n_pairs), dtype=np.int64)
    values = np.empty((n, n_pairs), dtype=np.int64)
    asked = np.empty((n, n_queries), dtype=np.int64)
    for i in range(n):  # row by row, so that row i does not depend on n
        keys[i] = rng.random(n_keys).argsort()[:n_pairs]  # distinct keys
        values[i] = rng.integers(n_keys, n_keys + n_values, size=n_pairs)
        asked[i] = rng.random(n_pairs).argsort()[:n_queries]  # which pairs are asked, in which order
    q_keys = np.take_along_axis(keys, asked, axis=1)
    q_values = np.take_along_axis(values, asked, axis=1)
    T = 2 * (n_pairs + n_queries)
    tokens = np.empty((n, T), dtype=np.int64)
    tokens[:, 0 : 2 * n_pairs : 2], tokens[:, 1 : 2 * n_pairs : 2] = keys, values
    tokens[:, 2 * n_pairs :: 2], tokens[:, 2 * n_pairs + 1 :: 2] = q_keys, q_values
    targets = np.full((n, T), IGNORE, dtype=np.int64)
    targets[:, 2 * n_pairs :: 2] = q_values  # at a queried key: predict its value
    return tokens, targets


def mqar_accuracy(logits, targets) -> float:
    """The share of scored positions (targets != IGNORE) whose arg-max prediction is right.

    logits: (n, T, vocab), targets: (n, T) as `make_mqar` returns them; tensors or NumPy arrays."""
    predicted = np.asarray(logits.argmax(-1).tolist() if hasattr(logits, "detach") else logits.argmax(-1))
    targets = np.asarray(targets.tolist() if hasattr(targets, "detach") else targets)
    scored = targets != IGNORE
    return float((predicted[scored] == targets[scored]).mean())
