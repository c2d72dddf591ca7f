"""`Value` (scalar autograd) and the micrograd MLP vs torch autograd in float64."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bestiary.scratch.micrograd_nn import MLP
from bestiary.scratch.value import Value

floats = st.floats(min_value=-3.0, max_value=3.0, allow_nan=False)
positive = st.floats(min_value=0.1, max_value=3.0)


def _expr(a, b, c, lib):
    """The same expression written once for Value and once for torch tensors."""
    if lib == "value":
        exp, log, tanh, relu, sigmoid = Value.exp, Value.log, Value.tanh, Value.relu, Value.sigmoid
    else:
        exp, log, tanh, relu, sigmoid = torch.exp, torch.log, torch.tanh, torch.relu, torch.sigmoid
    y = a * b + exp(a) / (1 + c) - tanh(b) ** 3
    y = y + relu(a - b) * sigmoid(b * c) - log(c) * (-a) + 2 - b / 3 + 1 / c
    y = y + c**0.5 * a + (2**a) - (a * a)  # a used twice -> gradients must accumulate
    return y


@settings(max_examples=40, deadline=None)
@given(floats, floats, positive)
def test_value_matches_torch(a, b, c):
    va, vb, vc = Value(a), Value(b), Value(c)
    y = _expr(va, vb, vc, "value")
    y.backward()
    ta, tb, tc = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (a, b, c))
    ty = _expr(ta, tb, tc, "torch")
    ty.backward()
    assert y.data == pytest.approx(ty.item(), rel=1e-12, abs=1e-12)
    for v, t in ((va, ta), (vb, tb), (vc, tc)):
        assert v.grad == pytest.approx(t.grad.item(), rel=1e-10, abs=1e-10)


def test_value_finite_differences():
    def f(x):
        return ((x * x).tanh() + x.sigmoid() * x.exp()).log()

    for x0 in (-1.3, 0.2, 0.9):
        x = Value(x0)
        f(x).backward()
        eps = 1e-6
        fd = (f(Value(x0 + eps)).data - f(Value(x0 - eps)).data) / (2 * eps)
        assert x.grad == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_gradients_accumulate_across_backward_calls():
    x = Value(1.5)
    y = x * x
    y.backward()
    first = x.grad
    y2 = x * x
    y2.backward()
    assert first == pytest.approx(3.0)
    assert x.grad == pytest.approx(2 * first)  # accumulated, exactly like torch


def test_sigmoid_is_stable_for_large_inputs():
    assert Value(-1000.0).sigmoid().data == 0.0
    assert Value(1000.0).sigmoid().data == 1.0


def test_long_chain_does_not_hit_recursion_limit():
    x = Value(0.5)
    y = x
    for _ in range(5000):
        y = y * 1.0 + 0.0
    y.backward()
    assert x.grad == pytest.approx(1.0)


def test_bad_inputs():
    with pytest.raises(TypeError, match="number"):
        Value("abc")
    with pytest.raises(TypeError):
        Value(1.0) + "a"
    with pytest.raises(ValueError, match="non-positive"):
        Value(-1.0).log()
    with pytest.raises(ValueError, match="expects 2 inputs"):
        MLP(2, [3, 1], seed=0)([1.0, 2.0, 3.0])


def test_micrograd_mlp_matches_torch_with_copied_weights():
    model = MLP(3, [4, 4, 1], activation="tanh", seed=0)
    torch_model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)
    ).double()
    linears = [m for m in torch_model if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for layer, lin in zip(model.layers, linears):
            lin.weight.copy_(
                torch.tensor([[w.data for w in n.w] for n in layer.neurons], dtype=torch.float64)
            )
            lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons], dtype=torch.float64))
    xs = [[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]]
    ys = [1.0, -1.0]
    loss = sum(((model(x) - y) ** 2 for x, y in zip(xs, ys)), Value(0.0)) / len(xs)
    model.zero_grad()
    loss.backward()
    t_loss = (
        (
            torch_model(torch.tensor(xs, dtype=torch.float64)).squeeze(1)
            - torch.tensor(ys, dtype=torch.float64)
        )
        ** 2
    ).mean()
    t_loss.backward()
    assert loss.data == pytest.approx(t_loss.item(), rel=1e-12)
    for layer, lin in zip(model.layers, linears):
        for j, n in enumerate(layer.neurons):
            for k, w in enumerate(n.w):
                assert w.grad == pytest.approx(lin.weight.grad[j, k].item(), rel=1e-10, abs=1e-12)
            assert n.b.grad == pytest.approx(lin.bias.grad[j].item(), rel=1e-10, abs=1e-12)
    assert len(model.parameters()) == sum(p.numel() for p in torch_model.parameters())
    assert not math.isnan(loss.data)


def test_second_backward_on_same_graph_matches_torch_retain_graph():
    x = Value(1.5)
    y = (x * x).tanh() * x
    y.backward()
    y.backward()
    t = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    ty = torch.tanh(t * t) * t
    ty.backward(retain_graph=True)
    ty.backward()
    assert x.grad == pytest.approx(t.grad.item(), rel=1e-12)


def test_value_power_with_value_exponent():
    a, b = Value(1.7), Value(-0.6)
    (a**b).backward()
    ta = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(-0.6, dtype=torch.float64, requires_grad=True)
    (ta**tb).backward()
    assert a.grad == pytest.approx(ta.grad.item(), rel=1e-12)
    assert b.grad == pytest.approx(tb.grad.item(), rel=1e-12)
