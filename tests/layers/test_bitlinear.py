"""BitLinear: the quantisers against their definitions (written out here), the straight-through
gradients, and the ternary weight set."""

import numpy as np
import torch
import torch.nn.functional as F

from bestiary.layers.bitlinear import BitLinear, absmax_quantize, absmean_quantize, straight_through


def test_absmean_quantizer_matches_its_definition():
    torch.manual_seed(0)
    w = torch.randn(16, 12, dtype=torch.float64)
    eps = 1e-5
    w_np = w.numpy()
    expected = np.clip(np.round(w_np / (np.abs(w_np).mean() + eps)), -1, 1)
    w_q, scale = absmean_quantize(w, eps)
    np.testing.assert_array_equal(w_q.numpy(), expected)
    np.testing.assert_allclose(scale.item(), np.abs(w_np).mean() + eps, rtol=1e-12)
    assert set(np.unique(w_q.numpy())) == {-1.0, 0.0, 1.0}  # ternary, and all three values occur


def test_absmax_quantizer_matches_its_definition():
    torch.manual_seed(1)
    x = 3 * torch.randn(4, 5, 10, dtype=torch.float64)
    x_np = x.numpy()
    gamma = np.abs(x_np).max(axis=-1, keepdims=True)  # per token
    expected = np.clip(np.round(x_np * 127 / gamma), -128, 127)
    x_q, scale = absmax_quantize(x, bits=8)
    np.testing.assert_array_equal(x_q.numpy(), expected)
    assert x_q.abs().max() == 127 and len(np.unique(x_q.numpy())) <= 256
    # the dequantised value is within half a step of the original
    assert (x_q / scale - x).abs().le(0.5 / scale + 1e-12).all()
    x4, _ = absmax_quantize(x, bits=4)
    assert x4.min() >= -8 and x4.max() <= 7


def test_straight_through_is_identity_in_the_backward_pass():
    x = torch.randn(5, requires_grad=True)
    c = torch.randn(5)
    (c * straight_through(x, x.detach().round())).sum().backward()
    torch.testing.assert_close(x.grad, c, rtol=0, atol=0)


def test_bitlinear_forward_is_the_quantised_matmul():
    torch.manual_seed(2)
    layer = BitLinear(8, 6, bias=True, norm="none").double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(3, 8, dtype=torch.float64)
    w_np, x_np = layer.weight.detach().numpy(), x.numpy()
    w_scale = np.abs(w_np).mean() + 1e-5
    w_q = np.clip(np.round(w_np / w_scale), -1, 1)
    x_scale = 127 / np.abs(x_np).max(axis=-1, keepdims=True)
    x_q = np.clip(np.round(x_np * x_scale), -128, 127)
    # integer matmul, rescaled once at the end: what an int8 kernel would compute
    expected = (x_q @ w_q.T) * w_scale / x_scale + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bitlinear_gradients_are_straight_through():
    torch.manual_seed(3)
    layer = BitLinear(8, 4, norm="none").double()
    x = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(5, 4, dtype=torch.float64)
    (layer(x) * upstream).sum().backward()
    # reference: the same matmul with quantised operands, but the rounding treated as identity
    w_q, w_scale = absmean_quantize(layer.weight.detach(), 1e-5)
    x_q, x_scale = absmax_quantize(x.detach(), 8)
    w_deq, x_deq = w_q * w_scale, x_q / x_scale
    torch.testing.assert_close(layer.weight.grad, upstream.T @ x_deq)  # dL/dW = g^T x_q
    torch.testing.assert_close(x.grad, upstream @ w_deq)  # dL/dx = g W_q
    # and that differs from the full-precision gradient: the quantisation is really in the forward
    assert not torch.allclose(x.grad, upstream @ layer.weight.detach())


def test_bitlinear_stored_weights_take_three_values():
    layer = BitLinear(32, 16)
    w_q, scale = layer.quantized_weight()
    assert w_q.dtype == torch.int8 and set(w_q.unique().tolist()) <= {-1, 0, 1}
    torch.testing.assert_close(w_q.float() * scale, absmean_quantize(layer.weight.detach())[0] * scale)


def test_bitlinear_with_rmsnorm_normalises_first():
    torch.manual_seed(4)
    layer = BitLinear(8, 4)  # default rmsnorm
    x = torch.randn(2, 8)
    # RMSNorm output is scale invariant, so the layer is too
    torch.testing.assert_close(layer(x), layer(10 * x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(layer(x), F.linear(x, layer.weight))
