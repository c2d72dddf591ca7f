"""`Tensor` ops: values and gradients vs torch autograd (float64), broadcasting included."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bestiary.scratch.tensor import Tensor, concatenate, matmul, no_grad, stack, unbroadcast, where

SETTINGS = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)
pairs = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=4, max_side=4)


def _compare(ours_fn, torch_fn, arrays, seed=0, atol=1e-10):
    """Run both functions, backprop the same random seed gradient, compare output and every grad."""
    ours_in = [Tensor(a, requires_grad=True) for a in arrays]
    torch_in = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out = ours_fn(*ours_in)
    t_out = torch_fn(*torch_in)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), rtol=1e-10, atol=atol)
    seed_grad = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(seed_grad)
    t_out.backward(torch.tensor(seed_grad))
    for ours, theirs in zip(ours_in, torch_in):
        expected = theirs.grad.numpy() if theirs.grad is not None else np.zeros(theirs.shape)
        assert ours.grad is not None and ours.grad.shape == ours.shape
        np.testing.assert_allclose(ours.grad, expected, rtol=1e-9, atol=atol)


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "pow"])
@SETTINGS
@given(shapes=pairs, seed=seeds)
def test_binary_ops_with_broadcasting(op, shapes, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shapes.input_shapes[0])
    b = rng.standard_normal(shapes.input_shapes[1])
    if op == "div":
        b = np.sign(b + 1e-12) * (0.5 + np.abs(b))  # keep away from 0
    if op == "pow":
        a = 0.5 + np.abs(a)  # positive base: the exponent's gradient needs log(a)
    fn = {
        "add": lambda x, y: x + y,
        "sub": lambda x, y: x - y,
        "mul": lambda x, y: x * y,
        "div": lambda x, y: x / y,
        "pow": lambda x, y: x**y,
    }[op]
    _compare(fn, fn, [a, b], seed)


def test_documented_broadcast_example():
    # (3, 1, 4) with (2, 4) -> (3, 2, 4): gradients summed back to each operand's shape.
    rng = np.random.default_rng(0)
    _compare(
        lambda x, y: (x * y + x) / (y * y + 1),
        lambda x, y: (x * y + x) / (y * y + 1),
        [rng.standard_normal((3, 1, 4)), rng.standard_normal((2, 4))],
    )


UNARY = {
    "neg": (lambda x: -x, lambda x: -x),
    "exp": (lambda x: x.exp(), torch.exp),
    "log": (lambda x: (x * x + 0.1).log(), lambda x: torch.log(x * x + 0.1)),
    "sqrt": (lambda x: (x * x + 0.1).sqrt(), lambda x: torch.sqrt(x * x + 0.1)),
    "tanh": (lambda x: x.tanh(), torch.tanh),
    "sigmoid": (lambda x: x.sigmoid(), torch.sigmoid),
    "relu": (lambda x: x.relu(), torch.relu),
    "gelu": (lambda x: x.gelu(), lambda x: torch.nn.functional.gelu(x)),
    "gelu_tanh": (lambda x: x.gelu("tanh"), lambda x: torch.nn.functional.gelu(x, approximate="tanh")),
    "scalar_pow": (
        lambda x: x**3 - 2.0 * x**2 + 1 / (x * x + 1),
        lambda x: x**3 - 2.0 * x**2 + 1 / (x * x + 1),
    ),
    "reflected": (lambda x: 2.0 - x / 3.0 + 1.5**x, lambda x: 2.0 - x / 3.0 + 1.5**x),
}


@pytest.mark.parametrize("name", sorted(UNARY))
@SETTINGS
@given(shape=shapes, seed=seeds)
def test_unary_ops(name, shape, seed):
    x = 3 * np.random.default_rng(seed).standard_normal(shape)
    ours, theirs = UNARY[name]
    _compare(ours, theirs, [x], seed)


def test_sigmoid_and_softmax_are_stable_for_extreme_inputs():
    x = Tensor([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(x.sigmoid().data, [0.0, 0.5, 1.0])
    p = Tensor([[1000.0, 0.0, -1000.0]]).softmax(-1).data
    assert np.all(np.isfinite(p)) and p[0, 0] == pytest.approx(1.0)
    ls = Tensor([[1000.0, 0.0]]).log_softmax(-1).data
    np.testing.assert_allclose(ls, [[0.0, -1000.0]])


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_softmax_family(fn, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = 5 * np.random.default_rng(seed).standard_normal(shape)
    _compare(lambda t: getattr(t, fn)(axis), lambda t: getattr(torch, fn)(t, dim=axis), [x], seed)


def _axis_strategy(ndim):
    single = st.integers(-ndim, ndim - 1)
    several = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple)
    return st.one_of(st.none(), single, several)


@pytest.mark.parametrize("fn", ["sum", "mean", "max"])
@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_reductions(fn, shape, seed, data):
    axis = data.draw(_axis_strategy(len(shape)))
    keepdims = data.draw(st.booleans())
    x = np.random.default_rng(seed).standard_normal(shape)  # continuous: no ties in max

    def theirs(t):
        dim = tuple(range(t.ndim)) if axis is None else axis
        if fn == "max":
            return torch.amax(t, dim=dim, keepdim=keepdims)
        return getattr(torch, fn)(t, dim=dim, keepdim=keepdims)

    _compare(lambda t: getattr(t, fn)(axis=axis, keepdims=keepdims), theirs, [x], seed)


def test_max_splits_gradient_between_ties_like_torch_amax():
    x = [[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]]
    _compare(lambda t: t.max(axis=1), lambda t: torch.amax(t, dim=1), [np.array(x)])
    _compare(lambda t: t.max(), lambda t: torch.amax(t), [np.array(x)])


@SETTINGS
@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=2, max_side=3),
    mkn=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 4)),
    seed=seeds,
    vec=st.sampled_from(["none", "left", "right", "both"]),
)
def test_matmul_batched_and_vectors(batch, mkn, seed, vec):
    m, k, n = mkn
    rng = np.random.default_rng(seed)
    a_shape = (k,) if vec in ("left", "both") else (*batch.input_shapes[0], m, k)
    b_shape = (k,) if vec in ("right", "both") else (*batch.input_shapes[1], k, n)
    a, b = rng.standard_normal(a_shape), rng.standard_normal(b_shape)
    _compare(lambda x, y: x @ y, lambda x, y: x @ y, [a, b], seed)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=2, max_dims=4, max_side=4), seed=seeds, data=st.data())
def test_reshape_and_transpose(shape, seed, data):
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    x = np.random.default_rng(seed).standard_normal(shape)
    _compare(
        lambda t: t.transpose(perm).reshape(-1, shape[0]) * 2,
        lambda t: t.permute(perm).reshape(-1, shape[0]) * 2,
        [x],
        seed,
    )
    _compare(
        lambda t: t.T.swapaxes(0, -1),
        lambda t: t.permute(*reversed(range(t.ndim))).transpose(0, -1),
        [x],
        seed,
    )


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=2, max_dims=3, min_side=2, max_side=5), seed=seeds, data=st.data())
def test_indexing_and_gather(shape, seed, data):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    i = data.draw(st.integers(-shape[0], shape[0] - 1))
    rows = rng.integers(0, shape[0], size=7)  # repeats on purpose: gradients must add up
    cols = rng.integers(0, shape[1], size=7)
    _compare(lambda t: t[i], lambda t: t[i], [x], seed)
    _compare(lambda t: t[1:, ::2], lambda t: t[1:, ::2], [x], seed)
    _compare(lambda t: t[rows], lambda t: t[torch.tensor(rows)], [x], seed)
    _compare(lambda t: t[rows, cols], lambda t: t[torch.tensor(rows), torch.tensor(cols)], [x], seed)
    _compare(lambda t: t[..., None, 0], lambda t: t[..., None, 0], [x], seed)
    _compare(lambda t: t[Tensor(rows)], lambda t: t[torch.tensor(rows)], [x], seed)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), seed=seeds, data=st.data())
def test_concatenate_and_stack(shape, seed, data):
    axis = data.draw(st.integers(0, len(shape) - 1))
    rng = np.random.default_rng(seed)
    other = list(shape)
    other[axis] += 1
    a, b, c = rng.standard_normal(shape), rng.standard_normal(other), rng.standard_normal(shape)
    _compare(
        lambda x, y, z: concatenate([x, y, z * 2], axis=axis),
        lambda x, y, z: torch.cat([x, y, z * 2], dim=axis),
        [a, b, c],
        seed,
    )
    new_axis = data.draw(st.integers(0, len(shape)))
    _compare(
        lambda x, z: stack([x, z, x], axis=new_axis),
        lambda x, z: torch.stack([x, z, x], dim=new_axis),
        [a, c],
        seed,
    )


def test_where_and_masked_fill():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((4,))
    cond = rng.random((3, 4)) > 0.5
    _compare(lambda x, y: where(cond, x, y), lambda x, y: torch.where(torch.tensor(cond), x, y), [a, b])
    _compare(lambda x: x.masked_fill(cond, -5.0), lambda x: x.masked_fill(torch.tensor(cond), -5.0), [a])


def test_composite_function_against_central_finite_differences():
    rng = np.random.default_rng(1)
    x0, w0 = rng.standard_normal((4, 3)), rng.standard_normal((3, 5))

    def f(x, w):
        h = (x @ w).gelu("tanh") + (x @ w).sigmoid()
        return (h.softmax(axis=1).log() * h.tanh()).mean() + h.max(axis=0).sum() * 0.1

    x, w = Tensor(x0, requires_grad=True), Tensor(w0, requires_grad=True)
    f(x, w).backward()
    eps = 1e-6
    for param, base, other in ((x, x0, w0), (w, w0, x0)):
        fd = np.zeros_like(base)
        for idx in np.ndindex(base.shape):
            plus, minus = base.copy(), base.copy()
            plus[idx] += eps
            minus[idx] -= eps
            args_p = (plus, other) if param is x else (other, plus)
            args_m = (minus, other) if param is x else (other, minus)
            fd[idx] = (f(*map(Tensor, args_p)).item() - f(*map(Tensor, args_m)).item()) / (2 * eps)
        np.testing.assert_allclose(param.grad, fd, rtol=1e-5, atol=1e-8)


def test_unbroadcast_sums_prepended_and_stretched_axes():
    g = np.ones((3, 2, 4))
    np.testing.assert_array_equal(unbroadcast(g, (2, 4)), np.full((2, 4), 3.0))
    np.testing.assert_array_equal(unbroadcast(g, (3, 1, 4)), np.full((3, 1, 4), 2.0))
    np.testing.assert_array_equal(unbroadcast(g, ()), np.array(24.0))


# -- semantics and bad input ---------------------------------------------------------------------
def test_incompatible_shapes_raise_value_error_naming_both():
    a, b = Tensor(np.ones((3, 4))), Tensor(np.ones((2, 5)))
    for op in (lambda: a + b, lambda: a * b, lambda: a - b, lambda: a / b, lambda: a**b):
        with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 5\)"):
            op()
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 5\)"):
        matmul(a, b)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        a.reshape(5, 5)
    with pytest.raises(ValueError, match="same shape"):
        stack([a, b])
    with pytest.raises(TypeError, match="numeric"):
        Tensor(["a", "b"])


def test_backward_on_non_scalar_needs_seed():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar.*\(2, 3\)"):
        y.backward()
    with pytest.raises(ValueError, match="shape"):
        y.backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).exp().backward()


def test_gradients_accumulate_across_backward_calls_like_torch():
    x0 = np.array([1.0, -2.0, 0.5])
    x = Tensor(x0, requires_grad=True)
    t = torch.tensor(x0, requires_grad=True)
    y, ty = (x * x).sum(), (t * t).sum()
    y.backward()
    ty.backward(retain_graph=True)
    y.backward()  # same graph again: the leaf's gradient doubles
    ty.backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy())
    np.testing.assert_allclose(x.grad, 4 * x0)
    (x.exp().sum()).backward()  # a new graph adds on top
    np.testing.assert_allclose(x.grad, 4 * x0 + np.exp(x0))
    x.zero_grad()
    assert x.grad is None


def test_no_grad_and_detach():
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = x * 3
    assert not y.requires_grad
    z = x.detach() * 3
    assert not z.requires_grad
    assert x.detach().data is x.data  # shares storage like torch.detach

    @no_grad()
    def f(t):
        return t * 2

    assert not f(x).requires_grad
    assert (x * 2).requires_grad  # re-enabled afterwards


def test_numpy_array_on_the_left():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x + np.array([1.0, 1.0])
    assert isinstance(y, Tensor)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])
