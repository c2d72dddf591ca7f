"""LSTM: equal to torch.nn.LSTM with copied weights (outputs and gradients, float64), cached
decoding equal to the whole sequence, presets counted against torch.nn.LSTM."""

import pytest
import torch
from rnn_helpers import assert_whole_equals_chunked_equals_steps, copy_into_torch_rnn, torch_rnn_grads

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("lstm", tiny=True, **overrides).double()


def test_equals_torch_lstm_outputs_and_gradients():
    model = _model(in_dim=5, d_model=7, n_layers=3).eval()
    reference = torch.nn.LSTM(5, 7, num_layers=3, batch_first=True).double()
    copy_into_torch_rnn(model, reference)
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    ours, (theirs, _) = model(x), reference(x)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)
    weights = torch.randn_like(ours)  # a loss that weighs every output differently
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    ours_grads = [
        p.grad
        for layer in model.layers
        for p in (*layer.input_proj.parameters(), *layer.hidden_proj.parameters())
    ]
    for a, b in zip(ours_grads, torch_rnn_grads(reference, 3), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_final_state_in_the_cache_is_torch_lstms_h_n_and_c_n():
    model = _model(in_dim=4, d_model=6, n_layers=2).eval()
    reference = torch.nn.LSTM(4, 6, num_layers=2, batch_first=True).double()
    copy_into_torch_rnn(model, reference)
    x = torch.randn(3, 5, 4, dtype=torch.float64)
    cache = model.init_cache(3)
    with torch.no_grad():
        model(x, cache=cache)
        _, (h_n, c_n) = reference(x)
    for i in range(2):
        torch.testing.assert_close(cache[i]["h"], h_n[i])
        torch.testing.assert_close(cache[i]["c"], c_n[i])


def test_whole_equals_chunked_equals_token_by_token():
    assert_whole_equals_chunked_equals_steps(_model().eval(), torch.randn(2, 8, 4, dtype=torch.float64))


def test_dropout_acts_between_layers_only_in_training():
    model = _model(dropout=0.5)
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert not torch.allclose(model(x), model(x))


@pytest.mark.parametrize("preset", ["lstm_zaremba_medium", "lstm_zaremba_large"])
def test_preset_counts_equal_torch_lstm(preset):
    card = bestiary.card(preset)
    c = card.make_config(False, preset)
    with torch.device("meta"):
        reference = torch.nn.LSTM(c.in_dim, c.d_model, num_layers=c.n_layers)
    assert sum(p.numel() for p in reference.parameters()) == card.presets[preset].params


def test_wrong_feature_size_is_refused():
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, D=4\)"):
        _model()(torch.randn(1, 3, 5, dtype=torch.float64))
