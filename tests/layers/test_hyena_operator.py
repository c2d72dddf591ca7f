"""The Hyena operator and its three filters: FFT long convolution == direct (Toeplitz) convolution,
causality, the filters' closed forms, and whole == chunked == token by token through the cache."""

import math

import pytest
import torch

from bestiary.layers.hyena import ExplicitFilter, HyenaOperator, ImplicitFilter, ModalFilter
from bestiary.layers.ssm_kernels import direct_causal_conv


@pytest.fixture(autouse=True)
def _float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)


def _filters(kind, d=6, order=3):
    make = {
        "implicit": lambda: ImplicitFilter(d, max_len=32, d_filter=8, pos_dim=5),
        "se": lambda: ExplicitFilter(d, 4, decay=False),
        "mr": lambda: ExplicitFilter(d, 12, decay=True),
        "modal": lambda: ModalFilter(d, 3),
    }[kind]
    return [make() for _ in range(order - 1)]


def _naive_hyena(op, x):
    """The order-N recurrence with every long convolution as a T x T Toeplitz product."""
    projected = op.in_proj(x)  # (B, T, (N + 1) D)
    k = op.short_conv.kernel_size
    padded = torch.nn.functional.pad(projected.transpose(1, 2), (k - 1, 0))
    projected = op.short_conv.conv(padded).transpose(1, 2)
    *gates, z = projected.split(op.d_model, dim=-1)
    for n in range(len(op.filters)):
        z = gates[len(gates) - 1 - n] * z
        z = direct_causal_conv(z, op.filters[n].kernel(x.shape[1])) + op.skip[n] * z
    return op.out_proj(gates[0] * z)


@pytest.mark.parametrize("kind", ["implicit", "se", "mr", "modal"])
def test_operator_equals_direct_convolution_and_is_causal(kind):
    op = HyenaOperator(6, _filters(kind))
    x = torch.randn(2, 20, 6)
    y = op(x)
    torch.testing.assert_close(y, _naive_hyena(op, x))
    changed = x.clone()
    changed[:, 13] += 1.0
    y_changed = op(changed)
    torch.testing.assert_close(y_changed[:, :13], y[:, :13], rtol=0, atol=1e-12)  # the past is untouched
    assert (y_changed[:, 13:] - y[:, 13:]).abs().max() > 1e-3


@pytest.mark.parametrize("kind", ["implicit", "se", "mr", "modal"])
def test_operator_whole_equals_chunks_equals_steps(kind):
    op = HyenaOperator(6, _filters(kind))
    x = torch.randn(2, 15, 6)
    whole = op(x)
    cache = op.init_cache(2)
    pieces = [op(x[:, :5], cache=cache), op(x[:, 5:9], cache=cache)]
    pieces += [op(x[:, t : t + 1], cache=cache) for t in range(9, 15)]
    torch.testing.assert_close(torch.cat(pieces, 1), whole)
    assert cache.length == 15
    state = cache["filter_0"]
    expected = {"implicit": (2, 15, 6), "se": (2, 3, 6), "mr": (2, 11, 6), "modal": (2, 6, 3)}[kind]
    assert state.shape == expected  # only the implicit filter's cache grows with the text


def test_implicit_filter_is_ffn_of_positions_times_exponential_decay():
    f = ImplicitFilter(4, max_len=16, d_filter=8, pos_dim=5)
    t = torch.arange(10) / 16
    features = torch.stack([t, torch.cos(2 * math.pi * 1e-4 * t), torch.cos(2 * math.pi * t)], -1)
    features = torch.cat(
        [features, torch.sin(2 * math.pi * 1e-4 * t)[:, None], torch.sin(2 * math.pi * t)[:, None]], -1
    )
    ffn = f.ffn
    h = ffn[4](
        torch.sin(ffn[3].frequency * ffn[2](torch.sin(ffn[1].frequency * ffn[0](features))))
    )  # (10, 4)
    decay = torch.linspace(math.log(1e-2) / 1.5, math.log(1e-2) / 0.3, 4).abs()
    torch.testing.assert_close(f.kernel(10), (h * torch.exp(-t[:, None] * decay)).T)
    torch.testing.assert_close(f.kernel(4), f.kernel(10)[:, :4])  # taps don't depend on the length
    with pytest.raises(ValueError, match="max_seq_len=16"):
        f.kernel(17)


def test_modal_filter_is_a_sum_of_decaying_exponentials_and_a_recurrence():
    f = ModalFilter(3, 4)
    poles = f.poles()
    assert ((poles > 0) & (poles < 1)).all()
    expected = torch.stack([(f.residues * poles**t).sum(-1) for t in range(7)], -1)
    torch.testing.assert_close(f.kernel(7), expected)
    u = torch.randn(2, 9, 3)
    whole, _ = f(u, None)
    s = torch.zeros(2, 3, 4)
    for t in range(9):  # s_t = lambda s_{t-1} + u_t,  y_t = sum_m R_m s_t
        s = poles * s + u[:, t, :, None]
        torch.testing.assert_close(whole[:, t], (f.residues * s).sum(-1))


def test_medium_filter_decays_and_ends():
    f = ExplicitFilter(2, 5, decay=True)
    rate = torch.exp(f.log_rate)
    expected = f.taps * torch.exp(-rate[:, None] * torch.arange(5) / 5)
    torch.testing.assert_close(f.kernel(8), torch.cat([expected, torch.zeros(2, 3)], 1))
