"""GRU: equal to torch.nn.GRU with copied weights (outputs and gradients, float64), cached decoding
equal to the whole sequence."""

import pytest
import torch
from rnn_helpers import assert_whole_equals_chunked_equals_steps, copy_into_torch_rnn, torch_rnn_grads

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("gru", tiny=True, **overrides).double()


def test_equals_torch_gru_outputs_and_gradients():
    model = _model(in_dim=5, d_model=7, n_layers=3).eval()
    reference = torch.nn.GRU(5, 7, num_layers=3, batch_first=True).double()
    copy_into_torch_rnn(model, reference)
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    ours, (theirs, _) = model(x), reference(x)
    torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    ours_grads = [
        p.grad
        for layer in model.layers
        for p in (*layer.input_proj.parameters(), *layer.hidden_proj.parameters())
    ]
    for a, b in zip(ours_grads, torch_rnn_grads(reference, 3), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_parameter_count_equals_torch_gru():
    model = bestiary.build("gru", in_dim=10, d_model=20, n_layers=3)
    reference = torch.nn.GRU(10, 20, num_layers=3)
    assert bestiary.count_params(model) == sum(p.numel() for p in reference.parameters())


def test_whole_equals_chunked_equals_token_by_token():
    assert_whole_equals_chunked_equals_steps(_model().eval(), torch.randn(2, 8, 4, dtype=torch.float64))


def test_a_cache_from_another_model_is_refused():
    model, other = _model(), _model()
    with pytest.raises(ValueError, match="made by another GRU"):
        model(torch.randn(2, 3, 4, dtype=torch.float64), cache=other.init_cache(2))
