"""TransformerLike against torch.nn.LSTM / GRU with copied weights inside the documented layout,
written out in float64; decoding through the cache; what the options change."""

import pytest
import torch
import torch.nn.functional as F

import bestiary


def _model(**overrides):
    torch.manual_seed(0)
    config = dict(in_dim=3, d_model=8, n_layers=2, d_ff=16) | overrides
    return bestiary.build("transformer_like", **config).double().eval()


def _reference(model, x):
    """x = proj(x); per layer: x += RNN(x) (torch.nn with our weights); x += W2 gelu(W1 LN(x)); LN."""
    c = model.config
    x = model.input_proj(x)
    for layer in model.layers:
        cell = torch.nn.LSTM if c.cell == "lstm" else torch.nn.GRU
        rnn = cell(c.d_model, c.d_model, batch_first=True).double()
        with torch.no_grad():
            rnn.weight_ih_l0.copy_(layer.rnn.input_proj.weight)
            rnn.bias_ih_l0.copy_(layer.rnn.input_proj.bias)
            rnn.weight_hh_l0.copy_(layer.rnn.hidden_proj.weight)
            rnn.bias_hh_l0.copy_(layer.rnn.hidden_proj.bias)
        x = x + rnn(x)[0]  # the bare residual recurrence: no norm before it by default
        h = F.layer_norm(x, (c.d_model,), layer.ffn_norm.weight, layer.ffn_norm.bias, c.norm_eps)
        x = x + layer.ffn.down(F.gelu(layer.ffn.up(h)))
    return F.layer_norm(x, (c.d_model,), model.norm.weight, model.norm.bias, c.norm_eps)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_equals_the_documented_layout_around_torch_rnns(cell):
    model = _model(cell=cell)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), _reference(model, x), atol=1e-12, rtol=1e-10)


def test_whole_equals_chunked_equals_token_by_token():
    model, x = _model(), torch.randn(2, 9, 3, dtype=torch.float64)
    with torch.no_grad():
        full = model(x)
        cache = model.init_cache(2)
        steps = [model(x[:, :4], cache=cache)] + [model(x[:, t : t + 1], cache=cache) for t in range(4, 9)]
        size = cache.nbytes()
        model(x[:, :1], cache=cache)
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-12, rtol=1e-10)
    assert cache.nbytes() == size  # a constant-size state


def test_recurrent_norm_adds_a_norm_before_the_recurrence_only():
    plain, normed = _model(), _model(recurrent_norm=True)
    assert isinstance(plain.layers[0].rnn_norm, torch.nn.Identity)
    assert isinstance(normed.layers[0].rnn_norm, torch.nn.LayerNorm)
    x = torch.randn(1, 5, 3, dtype=torch.float64) * 10
    with torch.no_grad():
        assert not torch.allclose(plain(x), normed(x))  # same weights (same seed), different function
