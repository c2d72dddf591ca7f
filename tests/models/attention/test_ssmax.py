"""ssmax: the normaliser itself is checked against the paper's equation (values and gradients) in
tests/layers/test_attention_variants.py; here, the language model: it uses that normaliser in
every layer, and cached decoding equals the full forward."""

import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.ssmax import Config, SSMaxLM


def _model():
    torch.manual_seed(0)
    config = Config(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    return SSMaxLM(config).double().eval()


def test_cached_decoding_equals_the_full_forward():
    with torch.no_grad():
        assert_cached_equals_full(_model(), torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("ssmax", tiny=True), SSMaxLM)


def test_each_head_learns_its_own_log_n_scale():
    model = _model()
    normaliser = model.blocks[0].mixer.normaliser
    assert normaliser.scale.shape == (4,)
    torch.testing.assert_close(normaliser.scale, torch.full((4,), 0.43, dtype=torch.float64))
    model(torch.randint(0, 40, (2, 9))).pow(2).mean().backward()
    assert normaliser.scale.grad.abs().min() > 0  # every head's scale is trained
