"""sigmoid_attention: the normaliser itself is checked against the paper's equation (values and gradients) in
tests/layers/test_attention_variants.py; here, the language model: it uses that normaliser in
every layer, and cached decoding equals the full forward."""

import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.models.attention.sigmoid_attention import Config, SigmoidAttentionLM


def _model():
    torch.manual_seed(0)
    config = Config(vocab_size=40, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=48, max_seq_len=32)
    return SigmoidAttentionLM(config).double().eval()


def test_cached_decoding_equals_the_full_forward():
    with torch.no_grad():
        assert_cached_equals_full(_model(), torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("sigmoid_attention", tiny=True), SigmoidAttentionLM)


def test_zero_scores_weigh_every_visible_value_by_one_over_n_plus_one():
    # sigmoid(0 - log 32) = 1/33: output i = W_O (sum_{j<=i} v_j) / 33, no normalisation by the count
    mixer = _model().blocks[0].mixer
    x = torch.randn(2, 5, 32, dtype=torch.float64)
    with torch.no_grad():
        mixer.q_proj.weight.zero_()
        values = mixer.v_proj(x).view(2, 5, 2, 8).repeat_interleave(2, dim=2)  # (B, T, H, Dh)
        expected = mixer.out_proj(values.cumsum(dim=1).reshape(2, 5, 32) / 33)
        torch.testing.assert_close(mixer(x), expected, rtol=1e-10, atol=1e-12)
