"""Each sampler against its definition, computed independently in NumPy (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bestiary.generation import (
    SamplingParams,
    apply_repetition_penalty,
    min_p_filter,
    probs_from_logits,
    sample_next,
    top_k_filter,
    top_p_filter,
)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture
def logits() -> torch.Tensor:
    return torch.randn(4, 50, dtype=torch.float64) * 2


@pytest.mark.parametrize("k", [1, 3, 17, 50])
def test_top_k_keeps_exactly_the_k_largest(logits, k):
    probs = top_k_filter(logits, k).softmax(-1).numpy()
    for row, lg in zip(probs, logits.numpy()):
        assert (row > 0).sum() == k
        assert set(np.nonzero(row)[0]) == set(np.argsort(-lg)[:k])
        kept = np.argsort(-lg)[:k]
        np.testing.assert_allclose(row[kept], softmax(lg[kept]), rtol=1e-12)


def test_top_k_with_ties_still_keeps_exactly_k():
    lg = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert int((top_k_filter(lg, 2).softmax(-1) > 0).sum()) == 2


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.9, 0.999, 1.0])
def test_top_p_keeps_smallest_prefix_with_mass_at_least_p(logits, p):
    probs = top_p_filter(logits, p).softmax(-1).numpy()
    for row, lg in zip(probs, logits.numpy()):
        full = softmax(lg)
        order = np.argsort(-full)
        cum = np.cumsum(full[order])
        m = int(np.searchsorted(cum, p - 1e-12) + 1)  # smallest m with cum[m-1] >= p
        m = min(m, len(full))
        assert set(np.nonzero(row)[0]) == set(order[:m])
        assert full[order[:m]].sum() >= p - 1e-9
        assert m == 1 or full[order[: m - 1]].sum() < p  # one fewer would not reach p
        np.testing.assert_allclose(row[order[:m]], full[order[:m]] / full[order[:m]].sum(), rtol=1e-10)


@pytest.mark.parametrize("min_p", [0.0, 0.05, 0.2, 0.9, 1.0])
def test_min_p_threshold_is_relative_to_the_top_probability(logits, min_p):
    probs = min_p_filter(logits, min_p).softmax(-1).numpy()
    for row, lg in zip(probs, logits.numpy()):
        full = softmax(lg)
        keep = full >= min_p * full.max()
        assert np.array_equal(row > 0, keep)
        np.testing.assert_allclose(row[keep], full[keep] / full[keep].sum(), rtol=1e-10)


def test_repetition_penalty_follows_ctrl():
    lg = torch.tensor([[2.0, -1.0, 0.5, -3.0, 1.0]], dtype=torch.float64)
    context = torch.tensor([[0, 1, 1, 3]])  # token 1 twice: still penalised once
    out = apply_repetition_penalty(lg, context, 2.0).numpy()[0]
    expected = lg.numpy()[0].copy()
    for t in {0, 1, 3}:
        expected[t] = expected[t] / 2.0 if expected[t] > 0 else expected[t] * 2.0
    np.testing.assert_allclose(out, expected)
    assert np.allclose(apply_repetition_penalty(lg, context, 1.0).numpy(), lg.numpy())


@pytest.mark.parametrize("t", [0.3, 1.0, 2.5])
def test_temperature_scales_logits(logits, t):
    np.testing.assert_allclose(
        probs_from_logits(logits, temperature=t).numpy(), softmax(logits.numpy() / t), rtol=1e-6
    )


def test_temperature_zero_is_greedy(logits):
    probs = probs_from_logits(logits, temperature=0)
    assert torch.equal(probs.argmax(-1), logits.argmax(-1)) and torch.all(probs.sum(-1) == 1)
    assert torch.equal(sample_next(logits, SamplingParams(temperature=0)), logits.argmax(-1))


def test_sampling_frequencies_match_the_filtered_distribution():
    lg = torch.tensor([[2.0, 1.5, 1.0, 0.0, -1.0, -2.0]]).repeat(20_000, 1)
    params = SamplingParams(temperature=0.8, top_k=4)
    gen = torch.Generator().manual_seed(0)
    draws = sample_next(lg, params, generator=gen)
    freq = torch.bincount(draws, minlength=6).double() / len(draws)
    expected = probs_from_logits(lg[:1].double(), temperature=0.8, top_k=4)[0]
    assert freq[4:].sum() == 0  # outside the top 4: never drawn
    assert torch.allclose(freq, expected, atol=0.015)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(temperature=-0.1), "temperature"),
        (dict(top_k=0), "top_k"),
        (dict(top_k=2.5), "top_k"),
        (dict(top_p=0.0), "top_p"),
        (dict(top_p=1.2), "top_p"),
        (dict(min_p=-0.1), "min_p"),
        (dict(min_p=1.5), "min_p"),
        (dict(repetition_penalty=0.0), "repetition_penalty"),
    ],
)
def test_invalid_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SamplingParams(**kwargs)
    with pytest.raises(ValueError, match=match):
        probs_from_logits(torch.zeros(1, 5), **kwargs)


def test_filters_reject_wrong_logit_shape():
    with pytest.raises(ValueError, match=r"\(B, V\)"):
        top_k_filter(torch.zeros(2, 3, 4), 1)
