"""Synthetic generators: shapes, dtypes, seeding, and the geometry each one promises."""

from __future__ import annotations

import numpy as np
import pytest

from bestiary.data import synthetic as S

GENERATORS = {
    "clusters": lambda seed: S.make_clusters(60, 3, seed=seed),
    "clusters_5d": lambda seed: S.make_clusters(60, 4, dim=5, seed=seed),
    "moons": lambda seed: S.make_moons(60, seed=seed),
    "spirals": lambda seed: S.make_spirals(60, 3, seed=seed),
    "swiss_roll": lambda seed: S.make_swiss_roll(60, dim=3, seed=seed),
    "sine_waves": lambda seed: S.make_sine_waves(8, 20, seed=seed),
    "copy": lambda seed: S.make_copy_task(16, 7, 11, seed=seed),
    "reverse": lambda seed: S.make_reverse_task(16, 7, 11, min_len=2, seed=seed),
    "noisy_recall": lambda seed: S.make_noisy_recall(16, 9, seed=seed),
}


@pytest.mark.parametrize("name", GENERATORS)
def test_same_seed_same_data_other_seed_other_data(name):
    a, b, c = GENERATORS[name](0), GENERATORS[name](0), GENERATORS[name](1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    ("name", "x_shape", "x_dtype", "y_shape", "y_dtype"),
    [
        ("clusters", (60, 2), np.float32, (60,), np.int64),
        ("clusters_5d", (60, 5), np.float32, (60,), np.int64),
        ("moons", (60, 2), np.float32, (60,), np.int64),
        ("spirals", (60, 2), np.float32, (60,), np.int64),
        ("swiss_roll", (60, 3), np.float32, (60,), np.float32),
        ("sine_waves", (8, 20, 1), np.float32, (8, 20, 1), np.float32),
        ("copy", (16, 7), np.int64, (16, 7), np.int64),
        ("reverse", (16, 7), np.int64, (16, 7), np.int64),
        ("noisy_recall", (16, 10, 8), np.float32, (16,), np.int64),
    ],
)
def test_shapes_and_dtypes(name, x_shape, x_dtype, y_shape, y_dtype):
    x, y = GENERATORS[name](0)
    assert x.shape == x_shape and x.dtype == x_dtype
    assert y.shape == y_shape and y.dtype == y_dtype


@pytest.mark.parametrize("make", [S.make_moons, lambda n, seed: S.make_spirals(n, 2, seed=seed)])
def test_two_class_sets_are_balanced_and_shuffled(make):
    _, y = make(101, seed=0)
    assert abs(int((y == 0).sum()) - int((y == 1).sum())) <= 1
    assert len(np.unique(y[:10])) == 2  # shuffled, not all of class 0 first


def test_clusters_are_separable_by_nearest_centre():
    X, y = S.make_clusters(600, 5, std=0.2, radius=2.0, seed=0)
    assert np.bincount(y).tolist() == [120] * 5
    angles = 2 * np.pi * np.arange(5) / 5
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], 1)
    nearest = np.argmin(((X[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    assert (nearest == y).mean() > 0.99
    # Per-class spread matches std (sample std of 120 points: within ~15%).
    assert abs(float((X - centres[y]).std()) - 0.2) < 0.03


@pytest.mark.parametrize("dim", [2, 5])
def test_cluster_centres_are_the_centres_make_clusters_draws_around(dim):
    X, y = S.make_clusters(4000, 4, dim=dim, std=0.5, radius=3.0, seed=7)
    centres = S.cluster_centres(4, dim, radius=3.0, seed=7)
    class_means = np.stack([X[y == c].mean(0) for c in range(4)])  # 1,000 points each: std/sqrt(1000)
    np.testing.assert_allclose(class_means, centres, atol=0.08)
    np.testing.assert_allclose(np.linalg.norm(centres, axis=1), 3.0)
    if dim == 2:  # evenly spaced on the circle, the first at angle 0
        angles = 2 * np.pi * np.arange(4) / 4
        np.testing.assert_allclose(centres, 3.0 * np.stack([np.cos(angles), np.sin(angles)], 1))


def test_moons_lie_on_their_half_circles_without_noise():
    X, y = S.make_moons(200, noise=0.0, seed=0)
    upper, lower = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.linalg.norm(upper, axis=1), 1.0, atol=1e-6)
    assert np.all(upper[:, 1] >= -1e-6)
    np.testing.assert_allclose(np.linalg.norm(lower - [1.0, 0.5], axis=1), 1.0, atol=1e-6)
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)


def test_spiral_arms_follow_their_formula():
    X, y = S.make_spirals(300, 3, turns=1.0, noise=0.0, seed=0)
    r = np.linalg.norm(X, axis=1)
    assert r.min() >= 0.05 - 1e-6 and r.max() <= 1.0 + 1e-6
    # Angle of arm c at radius r is 2 pi (turns r + c / 3), modulo 2 pi.
    expected = 2 * np.pi * (r + y / 3)
    diff = np.angle(np.exp(1j * (np.arctan2(X[:, 1], X[:, 0]) - expected)))
    np.testing.assert_allclose(diff, 0.0, atol=1e-5)


def test_swiss_roll_geometry():
    X3, t = S.make_swiss_roll(200, dim=3, seed=0)
    np.testing.assert_allclose(np.hypot(X3[:, 0], X3[:, 2]) * 10, t, rtol=1e-5)
    assert t.min() >= 1.5 * np.pi and t.max() <= 4.5 * np.pi
    X2, t2 = S.make_swiss_roll(200, dim=2, seed=0)
    np.testing.assert_allclose(np.hypot(X2[:, 0], X2[:, 1]) * 10, t2, rtol=1e-5)
    with pytest.raises(ValueError, match="dim"):
        S.make_swiss_roll(10, dim=4)


def test_sine_targets_are_the_next_step():
    inputs, targets = S.make_sine_waves(16, 30, noise=0.0, seed=0)
    np.testing.assert_array_equal(targets[:, :-1], inputs[:, 1:])
    # A sampled sinusoid obeys s[k+1] + s[k-1] = 2 cos(w dt) s[k] with one constant per wave.
    s = np.concatenate([inputs[:, :, 0], targets[:, -1:, 0]], axis=1).astype(np.float64)  # (16, 31)
    ratio = (s[:, 2:] + s[:, :-2]) / s[:, 1:-1]
    mask = np.abs(s[:, 1:-1]) > 0.2
    for row, keep in zip(ratio, mask):
        assert np.ptp(row[keep]) < 1e-3
    noisy, clean = S.make_sine_waves(16, 30, noise=0.1, seed=0)
    assert not np.array_equal(noisy[:, 1:], clean[:, :-1])  # noise on inputs only


def test_copy_task():
    src, tgt = S.make_copy_task(50, 9, 13, seed=0)
    np.testing.assert_array_equal(src, tgt)
    assert src.min() >= S.N_SPECIAL_TOKENS and src.max() < 13
    assert len(np.unique(src)) == 13 - S.N_SPECIAL_TOKENS  # every content token used
    with pytest.raises(ValueError, match="special"):
        S.make_copy_task(5, 4, vocab_size=3)


def test_reverse_task_fixed_and_variable_length():
    src, tgt = S.make_reverse_task(40, 8, 13, seed=0)
    np.testing.assert_array_equal(tgt, src[:, ::-1])
    src, tgt = S.make_reverse_task(200, 8, 13, min_len=3, seed=0)
    lengths = (src != S.PAD).sum(1)
    assert lengths.min() == 3 and lengths.max() == 8
    for s, t, n in zip(src, tgt, lengths):
        assert list(t[:n]) == list(s[:n][::-1])
        assert np.all(s[n:] == S.PAD) and np.all(t[n:] == S.PAD)
    with pytest.raises(ValueError, match="min_len"):
        S.make_reverse_task(5, 4, min_len=5)


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="n must be a positive integer"):
        S.make_moons(0)
    with pytest.raises(ValueError, match="n_classes"):
        S.make_clusters(10, 0)


def test_noisy_recall_holds_the_label_at_step_0_and_only_noise_after():
    X, y = S.make_noisy_recall(400, 12, n_symbols=3, n_channels=5, noise_std=1.5, signal=2.0, seed=0)
    assert X.shape == (400, 13, 5) and set(np.unique(y)) == {0, 1, 2}
    # step 0: exactly the one-hot symbol scaled by `signal`; reading its argmax recovers the label
    np.testing.assert_array_equal(X[:, 0], 2.0 * np.eye(5, dtype=np.float32)[y])
    # steps 1..: zero-mean noise of the promised spread in every channel, independent of the label
    noise = X[:, 1:]
    assert abs(noise.mean()) < 0.05 and abs(noise.std() - 1.5) < 0.05
    assert abs(noise[y == 0, :, 0].mean() - noise[y == 1, :, 0].mean()) < 0.1
    # a fresh batch per (seed, step), reproducible
    a, b = S.make_noisy_recall(8, 4, seed=(0, 1)), S.make_noisy_recall(8, 4, seed=(0, 2))
    np.testing.assert_array_equal(a[0], S.make_noisy_recall(8, 4, seed=(0, 1))[0])
    assert not np.array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="n_symbols"):
        S.make_noisy_recall(4, 3, n_symbols=9, n_channels=8)
