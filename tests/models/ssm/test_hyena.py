"""Hyena LM: causality of the whole model, the growing cache (whole == chunked == token steps), and
the filters are implicit (the parameter count does not depend on max_seq_len). The operator's
oracle (FFT == Toeplitz convolution) is in tests/layers/test_hyena_operator.py."""

import torch
from ssm_helpers import assert_cache_steps_equal_full

import bestiary


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("hyena", tiny=True, **overrides).double().eval()


def test_future_tokens_do_not_change_past_logits():
    model = _build(order=3)
    tokens = torch.randint(0, 64, (2, 20))
    changed = tokens.clone()
    changed[:, 12] = (changed[:, 12] + 1) % 64
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=1e-12)
    assert (a[:, 12:] - b[:, 12:]).abs().max() > 1e-6


def test_whole_equals_chunks_equals_token_steps_with_a_growing_history():
    model = _build(order=3)
    cache = assert_cache_steps_equal_full(model, 64)
    assert cache[0]["filter_0"].shape == (2, 11, 16) and cache[0]["filter_1"].shape == (2, 11, 16)


def test_filters_are_implicit():
    count = bestiary.count_params
    assert count(_build(max_seq_len=64)) == count(_build(max_seq_len=4096))
