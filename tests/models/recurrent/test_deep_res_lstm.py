"""Deep residual LSTM: equals a hand-built GNMT stack of single-layer torch.nn.LSTMs with the residual
adds written out (outputs and gradients, float64); whole == chunked == token by token."""

import torch
from rnn_helpers import assert_whole_equals_chunked_equals_steps

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("deep_res_lstm", tiny=True, **overrides).double()


def test_equals_torch_lstm_layers_with_residuals_from_the_third_layer():
    model = _model(in_dim=5, d_model=6, n_layers=4, residual_from=2).eval()
    references = [torch.nn.LSTM(5 if i == 0 else 6, 6, batch_first=True).double() for i in range(4)]
    with torch.no_grad():
        for layer, reference in zip(model.layers, references, strict=True):
            reference.weight_ih_l0.copy_(layer.input_proj.weight)
            reference.bias_ih_l0.copy_(layer.input_proj.bias)
            reference.weight_hh_l0.copy_(layer.hidden_proj.weight)
            reference.bias_hh_l0.copy_(layer.hidden_proj.bias)
    x = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    h = references[0](x)[0]
    h = references[1](h)[0]  # layers 0 and 1: plain
    h = references[2](h)[0] + h  # from the third layer on: x_{i+1} = LSTM_i(x_i) + x_i
    expected = references[3](h)[0] + h
    ours = model(x)
    torch.testing.assert_close(ours, expected, atol=1e-12, rtol=1e-10)
    weights = torch.randn_like(ours)
    grad_ours = torch.autograd.grad((ours * weights).sum(), [x, model.layers[0].input_proj.weight])
    grad_ref = torch.autograd.grad((expected * weights).sum(), [x, references[0].weight_ih_l0])
    for a, b in zip(grad_ours, grad_ref, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-10)


def test_residuals_change_the_function_of_the_same_weights():
    plain, residual = _model(residual_from=3), _model(residual_from=1)  # 3 layers: residual_from=3 is none
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    layers = plain.layers
    expected_plain = layers[2](layers[1](layers[0](x)))
    torch.testing.assert_close(plain(x), expected_plain)
    assert not torch.allclose(residual(x), expected_plain)


def test_whole_equals_chunked_equals_token_by_token():
    assert_whole_equals_chunked_equals_steps(_model().eval(), torch.randn(2, 8, 4, dtype=torch.float64))
