"""softpick: the normaliser itself is checked against the paper's equation (values and gradients) in
tests/layers/test_attention_variants.py; here, the language model: it uses that normaliser in
every layer, and cached decoding equals the full forward."""

import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.softpick import Config, SoftpickLM


def _model():
    torch.manual_seed(0)
    config = Config(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    return SoftpickLM(config).double().eval()


def test_cached_decoding_equals_the_full_forward():
    with torch.no_grad():
        assert_cached_equals_full(_model(), torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("softpick", tiny=True), SoftpickLM)


def test_a_layer_with_zero_queries_outputs_exactly_zero():
    # every score is 0, e^0 - 1 = 0: softpick gives no weight at all (softmax would average the values)
    mixer = _model().blocks[0].mixer
    with torch.no_grad():
        mixer.q_proj.weight.zero_()
        assert mixer(torch.randn(2, 5, 32, dtype=torch.float64)).abs().max() == 0
