"""Mega: the damped EMA's FFT-convolution form == its recurrence == a NumPy float64 loop of the
paper's equations (values and gradients), and cached decoding == the full forward in both modes."""

import numpy as np
import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers.attention_variants import DampedEMA
from bestiary.models.attention.mega import Config, Mega


def np_ema(x, alpha, delta, beta, eta, omega):
    """Eq. (2)-(3): u_t = α⊙β x_t + (1 - α⊙δ)⊙u_{t-1}, y_t = ηᵀ u_t (per channel), plus ω x_t."""
    B, T, D = x.shape
    u = np.zeros((B, D, alpha.shape[-1]))
    y = np.zeros_like(x)
    for t in range(T):
        u = alpha * beta * x[:, t, :, None] + (1 - alpha * delta) * u
        y[:, t] = (u * eta).sum(-1) + omega * x[:, t]
    return y


def _ema(mode):
    torch.manual_seed(0)
    return DampedEMA(3, 4, mode=mode).double()


@pytest.mark.parametrize("mode", ["fft", "recurrent"])
def test_ema_and_its_gradient_match_the_recurrence_equations(mode):
    ema = _ema(mode)
    rng = np.random.default_rng(0)
    x, upstream = rng.normal(size=(2, 9, 3)), rng.normal(size=(2, 9, 3))
    xt = torch.tensor(x, requires_grad=True)
    y, _ = ema(xt)
    sig = lambda t: 1 / (1 + np.exp(-t.detach().numpy()))  # noqa: E731
    params = (sig(ema.alpha_logit), sig(ema.delta_logit), ema.beta.detach().numpy(), ema.eta.detach().numpy())
    omega = ema.omega.detach().numpy()
    np.testing.assert_allclose(y.detach().numpy(), np_ema(x, *params, omega), rtol=1e-10, atol=1e-12)
    (y * torch.tensor(upstream)).sum().backward()
    # the EMA is linear in x: its gradient is the same recurrence run backwards in time
    step = 1e-6
    for index in [(0, 0, 0), (1, 4, 2), (0, 8, 1)]:
        plus, minus = x.copy(), x.copy()
        plus[index] += step
        minus[index] -= step
        numeric = (
            (upstream * np_ema(plus, *params, omega)).sum() - (upstream * np_ema(minus, *params, omega)).sum()
        ) / (2 * step)
        assert xt.grad[index].item() == pytest.approx(numeric, rel=1e-6, abs=1e-9)


def test_fft_form_equals_the_recurrence_outputs_states_and_parameter_gradients():
    fft, recurrent = _ema("fft"), _ema("recurrent")
    x = torch.randn(2, 11, 3, dtype=torch.float64)
    (y_fft, state_fft), (y_rec, state_rec) = fft(x), recurrent(x)
    torch.testing.assert_close(y_fft, y_rec, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(state_fft, state_rec, rtol=1e-10, atol=1e-12)
    (y_fft.pow(2).sum() + state_fft.pow(2).sum()).backward()
    (y_rec.pow(2).sum() + state_rec.pow(2).sum()).backward()
    for (name, a), b in zip(fft.named_parameters(), recurrent.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("mode", ["fft", "recurrent"])
def test_cached_decoding_equals_the_full_forward(mode):
    torch.manual_seed(0)
    config = Config(vocab_size=40, d_model=16, n_layers=2, d_ff=32, d_state=4, qk_dim=8, v_dim=24, mode=mode)
    model = Mega(config).double().eval()
    with torch.no_grad():
        cache = assert_cached_equals_full(model, torch.randint(0, 40, (2, 9)), rtol=1e-10, atol=1e-10)
    assert cache[0].ema_state.shape == (2, 16, 4)
    with pytest.raises(TypeError, match="cannot forget"):
        cache.crop(3)


def test_registered():
    assert isinstance(bestiary.build("mega", tiny=True), Mega)
