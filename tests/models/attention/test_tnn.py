"""TNN: the FFT Toeplitz product == the explicit Toeplitz matmul == a NumPy float64 loop of the
definition (values and gradients), λ^k decay of the coefficients, and cached decoding == full."""

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.ssm_kernels import direct_causal_conv, fft_causal_conv
from bestiary.models.attention.tnn import TNN, Config, GatedToeplitzUnit


def np_toeplitz(x, t):
    """y_i = sum_{j<=i} t_{i-j} x_j, per channel, by loops."""
    y = np.zeros_like(x)
    for b in range(x.shape[0]):
        for i in range(x.shape[1]):
            for j in range(i + 1):
                y[b, i] += t[i - j] * x[b, j]
    return y


@pytest.mark.parametrize("conv", [direct_causal_conv, fft_causal_conv])
def test_toeplitz_product_and_gradient_match_the_definition(conv):
    rng = np.random.default_rng(0)
    x, t, upstream = rng.normal(size=(2, 7, 3)), rng.normal(size=(7, 3)), rng.normal(size=(2, 7, 3))
    xt, tt = torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=True)
    y = conv(xt, tt.T)  # kernels are (channels, taps)
    np.testing.assert_allclose(y.detach().numpy(), np_toeplitz(x, t), rtol=1e-10, atol=1e-12)
    (y * torch.tensor(upstream)).sum().backward()
    # the product is bilinear: dL/dx_j = sum_i t_{i-j} g_i, dL/dt_k = sum_i g_i x_{i-k}
    grad_x = np_toeplitz(upstream[:, ::-1], t)[:, ::-1]
    grad_t = np.stack([(upstream[:, k:] * x[:, : 7 - k]).sum((0, 1)) for k in range(7)])
    np.testing.assert_allclose(xt.grad.numpy(), grad_x, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tt.grad.numpy(), grad_t, rtol=1e-10, atol=1e-12)


def test_fft_and_matmul_modes_give_the_same_model_outputs_and_gradients():
    models = []
    for mode in ("fft", "matmul"):
        torch.manual_seed(0)
        models.append(TNN(Config(vocab_size=40, d_model=16, n_layers=2, d_ff=32, mode=mode)).double())
    tokens = torch.randint(0, 40, (2, 11))
    outputs = [m(tokens) for m in models]
    torch.testing.assert_close(outputs[0], outputs[1], rtol=1e-10, atol=1e-12)
    for out in outputs:
        out.pow(2).mean().backward()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-12)


def test_coefficients_decay_exponentially():
    torch.manual_seed(0)
    unit = GatedToeplitzUnit(8, rpe_dim=4, rpe_layers=1, decay=0.9).double()
    offsets = torch.arange(5, dtype=torch.float64)
    expected = 0.9 ** offsets[:, None] * unit.rpe(offsets)
    torch.testing.assert_close(unit.coefficients(5, offsets), expected)


@pytest.mark.parametrize("mode", ["fft", "matmul"])
def test_cached_decoding_equals_the_full_forward(mode):
    torch.manual_seed(0)
    model = TNN(Config(vocab_size=40, d_model=16, n_layers=2, d_ff=32, mode=mode)).double().eval()
    with torch.no_grad():
        cache = assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)
    assert cache.length == 9 and cache[0].length == 9


def test_registered():
    assert isinstance(bestiary.build("tnn", tiny=True), TNN)
