"""The recurrent mixers of bestiary.layers.rnn: minGRU and minLSTM against the minGRU-pytorch
package (weights copied), their parallel log-space scan against their step-by-step recurrence
(outputs and gradients), and every mixer's cache (whole == chunked == token by token)."""

import pytest
import torch
from minGRU_pytorch.minGRU import minGRU
from minGRU_pytorch.minLSTM import minLSTM

from bestiary.layers.block import Block
from bestiary.layers.rnn import GRUMixer, LSTMMixer, MinGRUMixer, MinLSTMMixer, g, log_g

MIN_MIXERS = [(MinGRUMixer, minGRU), (MinLSTMMixer, minLSTM)]


def _x(B=2, T=9, D=6, seed=1):
    torch.manual_seed(seed)
    return torch.randn(B, T, D, dtype=torch.float64)


def _mixer(cls, seed=0, **kwargs):
    torch.manual_seed(seed)
    return cls(6, **kwargs).double()


def test_g_is_positive_and_log_g_is_its_log():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert (g(x) > 0).all()
    torch.testing.assert_close(log_g(x), torch.log(g(x)))


@pytest.mark.parametrize("expansion", [1.0, 1.5])
@pytest.mark.parametrize(("ours_cls", "package_cls"), MIN_MIXERS)
def test_equals_the_mingru_pytorch_package(ours_cls, package_cls, expansion):
    """Our in_proj is the package's to_hidden_and_gate / to_hidden_and_f_i_gate (same chunk order),
    our out_proj its to_out. Both modes are compared (the package's parallel path for T > 1)."""
    x = _x()
    reference = package_cls(6, expansion_factor=expansion).double()
    for mode in ("parallel", "sequential"):
        ours = _mixer(ours_cls, expansion=expansion, mode=mode)
        with torch.no_grad():
            list(reference.children())[0].weight.copy_(ours.in_proj.weight)
            if expansion != 1.0:
                reference.to_out.weight.copy_(ours.out_proj.weight)
        torch.testing.assert_close(ours(x), reference(x), atol=1e-12, rtol=1e-10)


def test_min_gru_cache_carries_the_state_like_the_packages_prev_hidden():
    ours = _mixer(MinGRUMixer, expansion=1.5)
    reference = minGRU(6, expansion_factor=1.5).double()
    with torch.no_grad():
        reference.to_hidden_and_gate.weight.copy_(ours.in_proj.weight)
        reference.to_out.weight.copy_(ours.out_proj.weight)
    x = _x()
    cache = ours.init_cache(2)
    ours_out = torch.cat([ours(x[:, :4], cache=cache), ours(x[:, 4:], cache=cache)], dim=1)
    first, hidden = reference(x[:, :4], return_next_prev_hidden=True)
    second = reference(x[:, 4:], hidden)  # hidden (B, 1, d_inner): the positive state
    torch.testing.assert_close(ours_out, torch.cat([first, second], dim=1), atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("conv_kernel", [0, 3])
@pytest.mark.parametrize("cls", [MinGRUMixer, MinLSTMMixer])
def test_parallel_scan_equals_the_recurrence_outputs_and_gradients(cls, conv_kernel):
    x = _x().requires_grad_()
    results = []
    for mode in ("parallel", "sequential"):
        mixer = _mixer(cls, expansion=1.5, mode=mode, conv_kernel=conv_kernel)
        y = mixer(x)
        weights = torch.randn_like(y, generator=torch.Generator().manual_seed(2))
        grads = torch.autograd.grad((y * weights).sum(), [x, *mixer.parameters()])
        results.append((y, grads))
    (y_par, g_par), (y_seq, g_seq) = results
    torch.testing.assert_close(y_par, y_seq, atol=1e-12, rtol=1e-10)
    for a, b in zip(g_par, g_seq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


@pytest.mark.parametrize(
    ("cls", "kwargs"),
    [
        (LSTMMixer, {}),
        (GRUMixer, {}),
        (MinGRUMixer, dict(mode="parallel", conv_kernel=4)),
        (MinLSTMMixer, dict(mode="parallel", conv_kernel=4)),
        (MinGRUMixer, dict(mode="sequential")),
    ],
)
def test_whole_equals_chunked_equals_token_by_token(cls, kwargs):
    mixer, x = _mixer(cls, **kwargs), _x()
    whole = mixer(x)
    cache = mixer.init_cache(2)
    chunked = torch.cat(
        [mixer(x[:, :2], cache=cache), mixer(x[:, 2:7], cache=cache), mixer(x[:, 7:], cache=cache)], 1
    )
    cache = mixer.init_cache(2)
    steps = torch.cat([mixer(x[:, t : t + 1], cache=cache) for t in range(9)], dim=1)
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(steps, whole, atol=1e-12, rtol=1e-10)
    assert cache.length == 9


def test_the_log_space_scan_survives_a_long_sequence_in_float32():
    """A gate near 0 for thousands of steps: products of (1 - z) underflow in a naive cumprod, but
    the log-space scan stays finite and agrees with the loop."""
    mixer = MinGRUMixer(4, mode="parallel")
    torch.manual_seed(0)
    x = torch.randn(1, 2000, 4)
    sequential = MinGRUMixer(4, mode="sequential")
    sequential.load_state_dict(mixer.state_dict())
    y = mixer(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, sequential(x), atol=1e-4, rtol=1e-4)


def test_mixers_fit_in_a_residual_block():
    block = Block(6, _mixer(LSTMMixer), None, norm="rmsnorm").double()
    x = _x()
    cache = block.init_cache(2)
    steps = torch.cat([block(x[:, t : t + 1], cache=cache) for t in range(9)], dim=1)
    torch.testing.assert_close(steps, block(x))
