"""Seeded synthetic datasets: 2-D toy problems, sequences, and seq2seq token tasks.

Every generator takes `seed` and is deterministic: the same arguments give the same arrays,
bit for bit, on any machine (NumPy's `default_rng`, PCG64). They return NumPy arrays, features
`float32` and class labels `int64`; `torch.from_numpy` turns them into tensors without a copy, and
`bestiary.data.ArrayLoader` batches them.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BOS",
    "EOS",
    "N_SPECIAL_TOKENS",
    "PAD",
    "make_clusters",
    "make_copy_task",
    "make_moons",
    "make_noisy_recall",
    "make_reverse_task",
    "make_sine_waves",
    "make_spirals",
    "make_swiss_roll",
]

# Token ids reserved by the seq2seq tasks; content tokens are N_SPECIAL_TOKENS .. vocab_size - 1.
PAD, BOS, EOS = 0, 1, 2
N_SPECIAL_TOKENS = 3


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _balanced_labels(n: int, n_classes: int) -> np.ndarray:
    """0, 1, ..., n_classes-1, 0, 1, ...: class sizes differ by at most one."""
    return (np.arange(n) % n_classes).astype(np.int64)


def _shuffled(rng: np.random.Generator, X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(len(X))
    return X[order], y[order]


def _centres(rng: np.random.Generator, n_classes: int, dim: int, radius: float) -> np.ndarray:
    if dim == 2:
        angles = 2 * np.pi * np.arange(n_classes) / n_classes
        return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (C, 2)
    directions = rng.normal(size=(n_classes, dim))
    return radius * directions / np.linalg.norm(directions, axis=1, keepdims=True)  # (C, dim)


def cluster_centres(n_classes: int = 3, dim: int = 2, *, radius: float = 2.0, seed: int = 0) -> np.ndarray:
    """The centres (n_classes, dim) that `make_clusters` with the same arguments draws its blobs around.

    With them the best possible classifier is known (the nearest centre: equal round clusters, equal
    class sizes), which is the ceiling a lesson can measure its models against.
    """
    _check_positive(n_classes=n_classes, dim=dim)
    return _centres(np.random.default_rng(seed), n_classes, dim, radius)


def make_clusters(
    n: int = 500,
    n_classes: int = 3,
    dim: int = 2,
    *,
    std: float = 0.5,
    radius: float = 2.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class, with (nearly) equal class sizes.

    In 2-D the centres sit evenly on a circle of `radius` (a picture that reads well); in other
    dimensions they are random directions scaled to `radius`. Each point is its centre plus
    N(0, std^2) noise per coordinate.

    Returns:
        X: float32 (n, dim); y: int64 (n,) in 0..n_classes-1, shuffled.
    """
    _check_positive(n=n, n_classes=n_classes, dim=dim)
    rng = np.random.default_rng(seed)
    centres = _centres(rng, n_classes, dim, radius)  # (C, dim)
    y = _balanced_labels(n, n_classes)
    X = centres[y] + std * rng.normal(size=(n, dim))
    return _shuffled(rng, X.astype(np.float32), y)


def make_moons(n: int = 500, *, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (class 0 on top, class 1 below and shifted right).

    Class 0: (cos t, sin t), class 1: (1 - cos t, 0.5 - sin t), t uniform in [0, pi], plus
    N(0, noise^2) per coordinate. Not linearly separable: a linear model tops out near 85-88%.

    Returns:
        X: float32 (n, 2); y: int64 (n,) in {0, 1}, shuffled.
    """
    _check_positive(n=n)
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, 2)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    X = np.where(y[:, None] == 0, upper, lower) + noise * rng.normal(size=(n, 2))
    return _shuffled(rng, X.astype(np.float32), y)


def make_spirals(
    n: int = 500, n_classes: int = 2, *, turns: float = 1.5, noise: float = 0.05, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class (the classic "hard" 2-D classification problem).

    Arm c: radius r uniform in [0.05, 1], angle = 2*pi*(turns * r + c / n_classes); the point is
    r * (cos angle, sin angle) plus N(0, noise^2) per coordinate.

    Returns:
        X: float32 (n, 2); y: int64 (n,) in 0..n_classes-1, shuffled.
    """
    _check_positive(n=n, n_classes=n_classes)
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, n_classes)
    r = rng.uniform(0.05, 1.0, size=n)
    angle = 2 * np.pi * (turns * r + y / n_classes)
    X = r[:, None] * np.stack([np.cos(angle), np.sin(angle)], axis=1) + noise * rng.normal(size=(n, 2))
    return _shuffled(rng, X.astype(np.float32), y)


def make_swiss_roll(
    n: int = 1000, *, dim: int = 2, noise: float = 0.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Points on a swiss roll; the target is the position t along the roll (for colouring/regression).

    t uniform in [1.5*pi, 4.5*pi]; the roll is (t cos t, height, t sin t) / 10 with height uniform
    in [0, 2] (scaled so coordinates are about -1.5..1.5, a good range for diffusion models).
    `dim=2` returns the (t cos t, t sin t) / 10 spiral only, the usual 2-D diffusion toy.

    Returns:
        X: float32 (n, dim) with dim in {2, 3}; t: float32 (n,) the roll parameter.
    """
    _check_positive(n=n)
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, got {dim}")
    rng = np.random.default_rng(seed)
    t = rng.uniform(1.5 * np.pi, 4.5 * np.pi, size=n)
    height = rng.uniform(0.0, 2.0, size=n)
    coords = (
        [t * np.cos(t) / 10, t * np.sin(t) / 10]
        if dim == 2
        else [t * np.cos(t) / 10, height, t * np.sin(t) / 10]
    )
    X = np.stack(coords, axis=1) + noise * rng.normal(size=(n, dim))
    return X.astype(np.float32), t.astype(np.float32)


def make_sine_waves(
    n: int = 256,
    seq_len: int = 50,
    *,
    dt: float = 0.1,
    freq_range: tuple[float, float] = (0.5, 2.0),
    amp_range: tuple[float, float] = (0.5, 1.5),
    noise: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Next-step prediction on sine waves with random amplitude, frequency and phase.

    Wave i is s_i(k) = a_i * sin(2*pi*f_i*k*dt + phi_i) for k = 0..seq_len; inputs are steps
    0..seq_len-1 (plus optional N(0, noise^2) observation noise) and targets the clean steps
    1..seq_len, so targets[:, t] is the value right after inputs[:, t].

    Returns:
        inputs: float32 (n, seq_len, 1); targets: float32 (n, seq_len, 1).
    """
    _check_positive(n=n, seq_len=seq_len)
    rng = np.random.default_rng(seed)
    amp = rng.uniform(*amp_range, size=(n, 1))
    freq = rng.uniform(*freq_range, size=(n, 1))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, 1))
    k = np.arange(seq_len + 1)[None, :]  # (1, T + 1)
    waves = amp * np.sin(2 * np.pi * freq * k * dt + phase)  # (n, T + 1)
    inputs = waves[:, :-1] + noise * rng.normal(size=(n, seq_len))
    targets = waves[:, 1:]
    return inputs[..., None].astype(np.float32), targets[..., None].astype(np.float32)  # (n, T, 1)


def _token_sequences(
    rng: np.random.Generator, n: int, seq_len: int, vocab_size: int, min_len: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Random content tokens (n, seq_len), right-padded with PAD to per-row lengths; and the lengths."""
    _check_positive(n=n, seq_len=seq_len)
    if vocab_size <= N_SPECIAL_TOKENS:
        raise ValueError(f"vocab_size must exceed the {N_SPECIAL_TOKENS} special tokens, got {vocab_size}")
    tokens = rng.integers(N_SPECIAL_TOKENS, vocab_size, size=(n, seq_len))
    if min_len is None:
        lengths = np.full(n, seq_len)
    else:
        if not 1 <= min_len <= seq_len:
            raise ValueError(f"min_len must be in 1..seq_len={seq_len}, got {min_len}")
        lengths = rng.integers(min_len, seq_len + 1, size=n)
    positions = np.arange(seq_len)[None, :]  # (1, T)
    tokens = np.where(positions < lengths[:, None], tokens, PAD)
    return tokens.astype(np.int64), lengths.astype(np.int64)


def make_copy_task(
    n: int = 512, seq_len: int = 10, vocab_size: int = 13, *, min_len: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seq2seq copy: the target equals the source.

    Content tokens are drawn uniformly from N_SPECIAL_TOKENS..vocab_size-1; ids PAD=0, BOS=1,
    EOS=2 are reserved (add BOS/EOS yourself when building decoder inputs). With `min_len`, each
    row has a random length in min_len..seq_len and is right-padded with PAD.

    Returns:
        src: int64 (n, seq_len); tgt: int64 (n, seq_len).
    """
    rng = np.random.default_rng(seed)
    src, _ = _token_sequences(rng, n, seq_len, vocab_size, min_len)
    return src, src.copy()


def make_reverse_task(
    n: int = 512, seq_len: int = 10, vocab_size: int = 13, *, min_len: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seq2seq reversal: the target is the source's content in reverse order (padding stays at the end).

    Same tokens and reserved ids as `make_copy_task`. Harder than copying for a model without
    attention, because the first output depends on the last input.

    Returns:
        src: int64 (n, seq_len); tgt: int64 (n, seq_len).
    """
    rng = np.random.default_rng(seed)
    src, lengths = _token_sequences(rng, n, seq_len, vocab_size, min_len)
    positions = np.arange(seq_len)[None, :]  # (1, T)
    # Output position t reads input position length-1-t; positions past the length stay PAD.
    read_from = np.clip(lengths[:, None] - 1 - positions, 0, seq_len - 1)  # (n, T)
    tgt = np.where(positions < lengths[:, None], np.take_along_axis(src, read_from, axis=1), PAD)
    return src, tgt.astype(np.int64)


def make_noisy_recall(
    n: int = 32,
    delay: int = 60,
    *,
    n_symbols: int = 4,
    n_channels: int = 8,
    noise_std: float = 2.0,
    signal: float = 2.0,
    seed: int | tuple[int, ...] = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Remember one symbol through `delay` steps of noise (the memory task of F07 and F08).

    Step 0 holds the symbol: `signal` in channel y (one of the first `n_symbols` channels), zeros
    elsewhere. Steps 1..delay are N(0, noise_std^2) noise in *all* `n_channels` channels, the
    symbol's channels included, so a model cannot simply ignore some inputs: it has to store the
    symbol when it arrives and protect it from what follows. The label is y; chance is
    1 / n_symbols. `seed` may be a tuple (e.g. `(seed, step)`) to draw a fresh batch per step.

    Returns:
        X: float32 (n, delay + 1, n_channels); y: int64 (n,) in 0..n_symbols-1.
    """
    _check_positive(n=n, delay=delay, n_symbols=n_symbols, n_channels=n_channels)
    if n_symbols > n_channels:
        raise ValueError(f"n_symbols ({n_symbols}) must be <= n_channels ({n_channels})")
    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_symbols, n)
    X = noise_std * rng.standard_normal((n, delay + 1, n_channels))  # noise everywhere ...
    X[:, 0] = 0.0
    X[np.arange(n), 0, y] = signal  # ... except step 0, which holds the symbol to remember
    return X.astype(np.float32), y.astype(np.int64)
