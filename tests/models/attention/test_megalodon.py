"""MEGALODON: CEMA (complex EMA) FFT form == its recurrence == a NumPy complex128 loop of the paper's
equation (values and gradients); the timestep norm == per-step statistics over all steps so far;
attention reads only its own chunk; cached decoding == the full forward."""

import math

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention_variants import DampedEMA
from bestiary.models.attention.megalodon import Config, Megalodon, MegalodonLayer, TimestepNorm


def np_cema(x, alpha, delta, beta, eta, theta, omega):
    """Eq. (3): h_t = α e^{iθ} ⊙ β x_t + (1 - α δ) e^{iθ} ⊙ h_{t-1}, y_t = Re(ηᵀ h_t) (+ ω x_t)."""
    rotation = np.exp(1j * theta)
    h = np.zeros((x.shape[0], *alpha.shape), dtype=complex)
    y = np.zeros_like(x)
    for t in range(x.shape[1]):
        h = alpha * rotation * beta * x[:, t, :, None] + (1 - alpha * delta) * rotation * h
        y[:, t] = (eta * h).sum(-1).real + omega * x[:, t]
    return y


def _cema(mode):
    torch.manual_seed(0)
    return DampedEMA(3, 4, mode=mode, rotate=True).double()


def _np_params(ema):
    sig = lambda t: 1 / (1 + np.exp(-t.detach().numpy()))  # noqa: E731
    theta = 2 * math.pi * np.arange(1, 5) / 4 * sig(ema.angle_logit)
    p = (sig(ema.alpha_logit), sig(ema.delta_logit), ema.beta.detach().numpy(), ema.eta.detach().numpy())
    return (*p, theta, ema.omega.detach().numpy())


@pytest.mark.parametrize("mode", ["fft", "recurrent"])
def test_cema_and_its_gradient_match_the_equation(mode):
    ema = _cema(mode)
    rng = np.random.default_rng(0)
    x, upstream = rng.normal(size=(2, 9, 3)), rng.normal(size=(2, 9, 3))
    xt = torch.tensor(x, requires_grad=True)
    y, _ = ema(xt)
    params = _np_params(ema)
    np.testing.assert_allclose(y.detach().numpy(), np_cema(x, *params), rtol=1e-10, atol=1e-12)
    (y * torch.tensor(upstream)).sum().backward()
    step = 1e-6
    for index in [(0, 0, 0), (1, 4, 2), (0, 8, 1)]:
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric = ((upstream * np_cema(plus, *params)).sum() - (upstream * np_cema(minus, *params)).sum()) / (
            2 * step
        )
        assert xt.grad[index].item() == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_cema_fft_form_equals_the_recurrence_with_parameter_gradients():
    fft, recurrent = _cema("fft"), _cema("recurrent")
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    (y_fft, s_fft), (y_rec, s_rec) = fft(x), recurrent(x)
    torch.testing.assert_close(y_fft, y_rec, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_fft, s_rec, rtol=1e-10, atol=1e-12)
    (y_fft.pow(2).sum() + s_fft.abs().pow(2).sum()).backward()
    (y_rec.pow(2).sum() + s_rec.abs().pow(2).sum()).backward()
    for (name, a), b in zip(fft.named_parameters(), recurrent.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)


def test_timestep_norm_uses_the_statistics_of_all_steps_so_far():
    norm = TimestepNorm(4, n_groups=2, eps=1e-5).double()
    x = torch.randn(1, 5, 4, dtype=torch.float64)
    out, _ = norm(x)
    for t in range(5):
        seen = x[0, : t + 1].view(t + 1, 2, 2)  # (steps, groups, channels per group)
        mean, var = seen.mean(dim=(0, 2)), seen.var(dim=(0, 2), unbiased=False)
        expected = (x[0, t].view(2, 2) - mean[:, None]) / torch.sqrt(var[:, None] + 1e-5)
        torch.testing.assert_close(out[0, t], expected.reshape(4), rtol=1e-10, atol=1e-12)


def test_attention_reads_values_only_from_its_own_chunk():
    torch.manual_seed(0)
    layer = MegalodonLayer(8, qk_dim=4, v_dim=8, ema_dims=2, chunk_size=3, n_groups=2, norm_eps=1e-5).double()
    x = torch.randn(1, 6, 8, dtype=torch.float64)
    values = torch.randn(1, 6, 8, dtype=torch.float64, requires_grad=True)
    # values enter the output only through attention: make them a leaf we can take gradients of
    layer.v_proj.register_forward_hook(lambda module, inputs, output: values)
    layer(x)[0, 4].sum().backward()  # position 4 is in chunk 1 (positions 3..5)
    assert values.grad[0, :3].abs().max() == 0  # chunk 0: out of reach
    assert values.grad[0, 3:5].abs().min() > 0  # its own chunk up to itself
    assert values.grad[0, 5].abs().max() == 0  # the future


@pytest.mark.parametrize("mode", ["fft", "recurrent"])
def test_cached_decoding_equals_the_full_forward(mode):
    torch.manual_seed(0)
    config = Config(
        vocab_size=40, d_model=16, n_layers=2, d_ff=32, d_state=4, qk_dim=8, v_dim=16, chunk_size=3, mode=mode
    )
    model = Megalodon(config).double().eval()
    with torch.no_grad():
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 10)), split=4, rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("megalodon", tiny=True), Megalodon)
