"""ElmanRNN: hand-written BPTT equals finite differences and the autograd RNN of bestiary.scratch."""

from __future__ import annotations

import numpy as np
import pytest

from bestiary.scratch import RNN, ElmanRNN, Tensor


def _loss_and_grads(rnn, X, R):
    """L = sum(R * logits): dL/dlogits = R."""
    H, Z = rnn.forward(X)
    grads, dH = rnn.backward(X, H, R)
    return float((R * Z).sum()), grads, dH


def test_bptt_matches_central_finite_differences():
    rng = np.random.default_rng(0)
    rnn = ElmanRNN(3, 5, 2, scale=0.9, seed=1)
    rnn.params["bh"].data[:] = rng.standard_normal(5) * 0.1
    X, R = rng.standard_normal((2, 6, 3)), rng.standard_normal((2, 6, 2))
    _, grads, _ = _loss_and_grads(rnn, X, R)
    for name, prm in rnn.params.items():
        numeric = np.zeros_like(prm.data)
        for idx in np.ndindex(prm.data.shape):
            old = prm.data[idx]
            prm.data[idx] = old + 1e-6
            plus = _loss_and_grads(rnn, X, R)[0]
            prm.data[idx] = old - 1e-6
            minus = _loss_and_grads(rnn, X, R)[0]
            prm.data[idx] = old
            numeric[idx] = (plus - minus) / 2e-6
        np.testing.assert_allclose(grads[name], numeric, atol=1e-7, err_msg=name)


def test_same_outputs_and_input_gradients_as_the_autograd_rnn():
    rng = np.random.default_rng(2)
    rnn = ElmanRNN(4, 6, 3, seed=3)
    X, R = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 5, 3))
    H, Z = rnn.forward(X)
    grads, dH = rnn.backward(X, H, R)

    ref = RNN(4, 6, seed=0)  # torch layout: W_ih (H, in); ours is its transpose, one bias
    ref.weight_ih_l0.data[:] = rnn.params["Wxh"].data.T
    ref.weight_hh_l0.data[:] = rnn.params["Whh"].data.T
    ref.bias_ih_l0.data[:] = rnn.params["bh"].data
    ref.bias_hh_l0.data[:] = 0.0
    out, _ = ref(Tensor(X))
    np.testing.assert_allclose(out.data, H[:, 1:], atol=1e-12)
    # with L = sum(R * (h Why + by)), dL/dh_t from outside the recurrence is R Why^T
    upstream = R @ rnn.params["Why"].data.T
    (out * Tensor(upstream)).sum().backward()
    np.testing.assert_allclose(ref.weight_hh_l0.grad.T, grads["Whh"], atol=1e-12)
    np.testing.assert_allclose(ref.weight_ih_l0.grad.T, grads["Wxh"], atol=1e-12)
    np.testing.assert_allclose(ref.bias_ih_l0.grad, grads["bh"], atol=1e-12)


def test_seeded_init_copy_and_clipping():
    a, b = ElmanRNN(2, 4, 2, seed=5), ElmanRNN(2, 4, 2, seed=5)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k].data, b.params[k].data)
    wide = ElmanRNN(2, 400, 2, scale=2.0, seed=0)
    assert wide.params["Whh"].data.std() == pytest.approx(2.0 / np.sqrt(400), rel=0.05)
    c = ElmanRNN.from_arrays(a.arrays())
    c.params["Whh"].data[0, 0] += 1.0
    assert a.params["Whh"].data[0, 0] != c.params["Whh"].data[0, 0]  # a copy, not a view
    grads = {k: np.full_like(v, 3.0) for k, v in a.arrays().items()}
    norm = a.set_grads(grads, max_norm=1.0)
    clipped = np.sqrt(sum((p.grad**2).sum() for p in a.parameters()))
    assert norm > 1 and clipped == pytest.approx(1.0)
    with pytest.raises(ValueError, match="X must be"):
        a.forward(np.zeros((1, 3, 5)))
