"""min_lstm: the whole LM equals minGRU-pytorch's minLM(use_lstm=True) with copied weights; its parallel
log-space scan equals its recurrence (outputs and gradients); cached decoding equals the full run.
(The mixer itself is tested in tests/layers/test_rnn_mixers.py.)"""

from min_rnn_helpers import (
    assert_cached_decoding_equals_full,
    assert_equals_minlm,
    assert_parallel_equals_sequential,
)


def test_equals_the_packages_min_lm():
    assert_equals_minlm("min_lstm", use_lstm=True)


def test_parallel_equals_sequential_outputs_and_gradients():
    assert_parallel_equals_sequential("min_lstm")


def test_cached_decoding_with_the_conv_equals_the_full_forward():
    assert_cached_decoding_equals_full("min_lstm")
