"""Shared checks for the recurrent sequence models: copy weights into torch.nn.LSTM / torch.nn.GRU,
and compare whole, chunked and token-by-token runs through the cache."""

import torch


def copy_into_torch_rnn(model, reference):
    """Our layer i's (input_proj, hidden_proj) are torch's (weight_ih_l{i}, bias_ih_l{i}, weight_hh_l{i},
    bias_hh_l{i}): same gate order, same shapes."""
    with torch.no_grad():
        for i, layer in enumerate(model.layers):
            getattr(reference, f"weight_ih_l{i}").copy_(layer.input_proj.weight)
            getattr(reference, f"bias_ih_l{i}").copy_(layer.input_proj.bias)
            getattr(reference, f"weight_hh_l{i}").copy_(layer.hidden_proj.weight)
            getattr(reference, f"bias_hh_l{i}").copy_(layer.hidden_proj.bias)


def torch_rnn_grads(reference, n_layers):
    """The reference's gradients in our parameter order (input_proj.weight, .bias, hidden_proj...)."""
    out = []
    for i in range(n_layers):
        for name in ("weight_ih", "bias_ih", "weight_hh", "bias_hh"):
            out.append(getattr(reference, f"{name}_l{i}").grad)
    return out


def assert_whole_equals_chunked_equals_steps(model, x, atol=1e-12, rtol=1e-10):
    with torch.no_grad():
        whole = model(x)
        cache = model.init_cache(x.shape[0])
        chunked = torch.cat([model(x[:, :3], cache=cache), model(x[:, 3:], cache=cache)], dim=1)
        cache = model.init_cache(x.shape[0])
        steps = torch.cat([model(x[:, t : t + 1], cache=cache) for t in range(x.shape[1])], dim=1)
    torch.testing.assert_close(chunked, whole, atol=atol, rtol=rtol)
    torch.testing.assert_close(steps, whole, atol=atol, rtol=rtol)
    assert len(cache) == x.shape[1]
