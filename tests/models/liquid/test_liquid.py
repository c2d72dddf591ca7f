"""Liquid networks: the CfC and LTC cells equal the ncps package's (weights copied), the LTC's
explicit solvers converge at their orders against a fine reference integration (float64), the
adaptive dopri5 solver meets that reference, elapsed times are honoured, and the cache carries the
state (whole == chunked == token by token)."""

import pytest
import torch
from ncps.torch import CfC as NcpsCfC
from ncps.torch import CfCCell as NcpsCfCCell
from ncps.torch import LTCCell as NcpsLTCCell
from ncps.wirings import FullyConnected

import bestiary

LTC_PARAMS = [
    *("gleak", "vleak", "cm", "sigma", "mu", "w", "erev"),
    *("sensory_sigma", "sensory_mu", "sensory_w", "sensory_erev"),
    *("input_w", "input_b", "output_w", "output_b"),
]


def _model(**overrides):
    torch.manual_seed(0)
    return bestiary.build("liquid", tiny=True, **overrides).double()


def _inputs(B=3, T=7, seed=1):
    torch.manual_seed(seed)
    x = torch.randn(B, T, 3, dtype=torch.float64)
    dt = torch.rand(B, T, dtype=torch.float64) * 1.5 + 0.1  # irregular sampling
    return x, dt


def _copy_cfc(ours, reference):
    ours_linears = [m for m in ours.backbone if isinstance(m, torch.nn.Linear)]
    theirs_linears = [m for m in reference.backbone or [] if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for a, b in zip(ours_linears, theirs_linears, strict=True):
            b.weight.copy_(a.weight)
            b.bias.copy_(a.bias)
        for name, p in ours.named_parameters():
            if not name.startswith("backbone"):
                reference.get_parameter(name).copy_(p)


@pytest.mark.parametrize("backbone_layers", [0, 1, 2])
@pytest.mark.parametrize("mode", ["default", "no_gate", "pure"])
def test_cfc_equals_the_ncps_cell_with_irregular_time_steps(mode, backbone_layers):
    model = _model(cell="cfc", cfc_mode=mode, backbone_layers=backbone_layers)
    reference = NcpsCfCCell(3, 8, mode, "lecun_tanh", 16, backbone_layers).double()
    _copy_cfc(model.cell, reference)
    x, dt = _inputs()
    h, outputs = torch.zeros(3, 8, dtype=torch.float64), []
    for t in range(7):
        out, h = reference(x[:, t], h, dt[:, t, None])
        outputs.append(out)
    torch.testing.assert_close(model(x, dt=dt), torch.stack(outputs, 1), atol=1e-12, rtol=1e-10)


def test_cfc_equals_the_ncps_sequence_model():
    model = _model(cell="cfc")
    reference = NcpsCfC(3, 8, backbone_units=16, backbone_layers=1).double()
    _copy_cfc(model.cell, reference.rnn_cell)
    x, dt = _inputs(B=1)  # ncps squeezes the timespans, so one sequence at a time
    expected, _ = reference(x, timespans=dt[..., None])
    torch.testing.assert_close(model(x, dt=dt), expected, atol=1e-12, rtol=1e-10)


def test_ltc_semi_implicit_equals_the_ncps_cell():
    """ncps' fully connected LTCCell with softplus constraints (implicit_param_constraints=True) and
    the same 6 fused unfolds; its sparsity masks are all ones, so dropping them changes nothing."""
    model = _model(cell="ltc", solver="semi_implicit", ode_unfolds=6)
    wiring = FullyConnected(8)
    reference = NcpsLTCCell(wiring, in_features=3, ode_unfolds=6, implicit_param_constraints=True).double()
    assert reference.sparsity_mask.eq(1).all() and reference.sensory_sparsity_mask.eq(1).all()
    with torch.no_grad():
        for name in LTC_PARAMS:
            reference.get_parameter(name).copy_(getattr(model.cell, name))
    x, dt = _inputs()
    v, outputs = torch.zeros(3, 8, dtype=torch.float64), []
    for t in range(7):
        out, v = reference(x[:, t], v, dt[:, t, None])
        outputs.append(out)
    torch.testing.assert_close(model(x, dt=dt), torch.stack(outputs, 1), atol=1e-12, rtol=1e-10)


def _ltc_step(solver, unfolds, v0, u, dt):
    """One LTC step from state v0 with the weights of seed 0."""
    model = _model(cell="ltc", solver=solver, ode_unfolds=unfolds)
    with torch.no_grad():
        return model.cell(u, v0, dt)


def test_rk4_converges_at_order_four_and_euler_at_order_one():
    torch.manual_seed(2)
    v0, u = torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    dt = torch.tensor([[0.5], [0.8]], dtype=torch.float64)
    exact = _ltc_step("rk4", 512, v0, u, dt)  # fine reference: error ~ 1e-11 (16x finer than n = 32)
    errors = {
        solver: [(_ltc_step(solver, n, v0, u, dt) - exact).abs().max().item() for n in (16, 32)]
        for solver in ("euler", "rk4")
    }
    euler_ratio = errors["euler"][0] / errors["euler"][1]
    rk4_ratio = errors["rk4"][0] / errors["rk4"][1]
    assert 1.7 < euler_ratio < 2.3, errors  # halving h halves the error: order 1
    assert 12 < rk4_ratio < 20, errors  # halving h divides it by 2^4: order 4
    assert errors["rk4"][0] < errors["euler"][0] / 100


def test_dopri5_and_semi_implicit_approach_the_fine_reference():
    torch.manual_seed(2)
    v0, u = torch.randn(2, 8, dtype=torch.float64), torch.randn(2, 3, dtype=torch.float64)
    dt = torch.tensor([[0.5], [0.8]], dtype=torch.float64)
    exact = _ltc_step("rk4", 512, v0, u, dt)
    torch.testing.assert_close(_ltc_step("dopri5", 1, v0, u, dt), exact, atol=1e-6, rtol=1e-6)
    coarse = (_ltc_step("semi_implicit", 8, v0, u, dt) - exact).abs().max()
    fine = (_ltc_step("semi_implicit", 256, v0, u, dt) - exact).abs().max()
    assert fine < coarse / 20  # the fused step is a consistent (first-order) solver


@pytest.mark.parametrize("solver", ["semi_implicit", "euler", "rk4"])
def test_two_half_steps_equal_one_whole_step_with_the_same_solver_steps(solver):
    """Elapsed time is honoured: u held for dt = 0.3 twice, 3 solver steps each, is u held for
    0.6 with 6 steps (the same 6 solver steps of size 0.1)."""
    x = torch.randn(2, 1, 3, dtype=torch.float64)
    halves = _model(cell="ltc", solver=solver, ode_unfolds=3)(x.repeat(1, 2, 1), dt=0.3)[:, -1]
    whole = _model(cell="ltc", solver=solver, ode_unfolds=6)(x, dt=0.6)[:, -1]
    torch.testing.assert_close(halves, whole, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("cell", ["ltc", "cfc"])
def test_whole_equals_chunked_equals_token_by_token_with_irregular_steps(cell):
    model, (x, dt) = _model(cell=cell), _inputs()
    with torch.no_grad():
        whole = model(x, dt=dt)
        cache = model.init_cache(3)
        chunked = torch.cat(
            [model(x[:, :4], dt=dt[:, :4], cache=cache), model(x[:, 4:], dt=dt[:, 4:], cache=cache)], 1
        )
        cache = model.init_cache(3)
        steps = torch.cat([model(x[:, t : t + 1], dt=dt[:, t : t + 1], cache=cache) for t in range(7)], 1)
        assert not torch.allclose(model(x, dt=2 * dt), whole)  # the elapsed time matters
    torch.testing.assert_close(chunked, whole, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(steps, whole, atol=1e-12, rtol=1e-10)


def test_wrong_dt_shape_is_refused():
    x, dt = _inputs()
    with pytest.raises(ValueError, match=r"expected dt of shape \(B=3, T=7\)"):
        _model()(x, dt=dt[:, :5])
