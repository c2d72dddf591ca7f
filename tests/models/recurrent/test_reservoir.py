"""Echo State Network: the ridge readout equals scikit-learn's Ridge on the same states; the
reservoir has the requested spectral radius, is fixed (buffers, no gradient) and forgets its
initial state (echo-state property); cached steps equal the whole run; it learns a delay task."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

import bestiary


def _esn(**overrides):
    torch.manual_seed(0)
    return bestiary.build("reservoir", tiny=True, **overrides).double()


def test_readout_equals_sklearn_ridge_on_the_collected_states():
    esn = _esn(out_dim=2, washout=3)
    u = torch.randn(3, 20, 3, dtype=torch.float64)
    targets = torch.randn(3, 20, 2, dtype=torch.float64)
    esn.fit(u, targets, ridge=0.1)
    with torch.no_grad():
        states = esn.forward_features(u)[:, 3:].flatten(0, 1).numpy()
    reference = Ridge(alpha=0.1, fit_intercept=True, solver="cholesky").fit(
        states, targets[:, 3:].flatten(0, 1).numpy()
    )
    np.testing.assert_allclose(esn.readout.weight.detach().numpy(), reference.coef_, atol=1e-9, rtol=1e-7)
    np.testing.assert_allclose(esn.readout.bias.detach().numpy(), reference.intercept_, atol=1e-9, rtol=1e-7)


def test_spectral_radius_is_the_configured_one():
    esn = _esn(spectral_radius=0.7)
    assert torch.linalg.eigvals(esn.w).abs().max().item() == pytest.approx(0.7, rel=1e-5)  # built in float32


def test_echo_state_property_two_initial_states_converge():
    esn = _esn(spectral_radius=0.8, leak_rate=1.0)
    u = torch.randn(1, 200, 3, dtype=torch.float64)
    with torch.no_grad():
        a = esn.forward_features(u, x0=torch.full((1, 24), 0.9, dtype=torch.float64))
        b = esn.forward_features(u, x0=-torch.full((1, 24), 0.9, dtype=torch.float64))
    gap = (a - b).abs().amax(dim=-1)[0]
    assert gap[0] > 0.1 and gap[-1] < 1e-8  # they start apart and end on the same trajectory


def test_the_reservoir_is_fixed_only_the_readout_learns():
    esn = _esn()
    assert {name for name, _ in esn.named_parameters()} == {"readout.weight", "readout.bias"}
    assert {"w", "w_in", "bias"} <= set(esn.state_dict())
    esn(torch.randn(2, 5, 3, dtype=torch.float64)).pow(2).sum().backward()
    assert esn.readout.weight.grad is not None
    assert all(not b.requires_grad for b in esn.buffers())


def test_whole_equals_token_by_token_via_the_cache():
    esn, u = _esn(), torch.randn(2, 8, 3, dtype=torch.float64)
    with torch.no_grad():
        whole = esn(u)
        cache = esn.init_cache(2)
        steps = torch.cat([esn(u[:, t : t + 1], cache=cache) for t in range(8)], dim=1)
    torch.testing.assert_close(steps, whole)


def test_learns_to_recall_the_input_three_steps_back():
    """The classic memory task: y_t = u_{t-3}. A fitted readout recalls it almost perfectly."""
    torch.manual_seed(0)
    esn = bestiary.build("reservoir", in_dim=1, d_model=100, out_dim=1, leak_rate=1.0, washout=20).double()
    u = torch.rand(1, 600, 1, dtype=torch.float64) - 0.5
    target = torch.roll(u, 3, dims=1)
    esn.fit(u[:, :500], target[:, :500], ridge=1e-8)
    with torch.no_grad():
        cache = esn.init_cache(1)
        esn(u[:, :500], cache=cache)
        prediction = esn(u[:, 500:], cache=cache)
    nrmse = (prediction - target[:, 500:]).pow(2).mean().sqrt() / target.std()
    assert nrmse < 0.1
