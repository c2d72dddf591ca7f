"""Scratch layers vs torch.nn with copied weights (float64): values and gradients."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from bestiary.scratch.nn import (
    LSTM,
    MLP,
    RNN,
    Embedding,
    Linear,
    LSTMCell,
    MultiHeadAttention,
    RNNCell,
    SingleHeadAttention,
    causal_mask,
    cross_entropy,
    mse_loss,
    scaled_dot_product_attention,
)
from bestiary.scratch.tensor import Tensor

TOL = {"rtol": 1e-9, "atol": 1e-11}


def _t(a, grad=False):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=grad)


def _copy_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def _assert_param_grads(ours, theirs):
    t_params = dict(theirs.named_parameters())
    o_params = dict(ours.named_parameters())
    assert set(o_params) == set(t_params)
    for name, p in o_params.items():
        np.testing.assert_allclose(p.grad, t_params[name].grad.numpy(), err_msg=name, **TOL)


def test_linear_and_mlp_match_torch():
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal((5, 3))
    ours = MLP([3, 8, 8, 2], activation="tanh", seed=0)
    theirs = torch.nn.Sequential(
        torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).double()
    # Sequential names its linears 0, 2, 4; ours are layers.0/1/2: map names explicitly.
    mapping = {"layers.0": "0", "layers.1": "2", "layers.2": "4"}
    ours.load_state_dict(
        {
            f"{o}.{w}": theirs.state_dict()[f"{t}.{w}"].numpy()
            for o, t in mapping.items()
            for w in ("weight", "bias")
        }
    )
    x, tx = Tensor(x0, requires_grad=True), _t(x0, True)
    y, ty = ours(x), theirs(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), **TOL)
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    for o, t in mapping.items():
        np.testing.assert_allclose(
            ours.layers[int(o[-1])].weight.grad, theirs[int(t)].weight.grad.numpy(), **TOL
        )
    assert ours.num_parameters() == sum(p.numel() for p in theirs.parameters())
    with pytest.raises(ValueError, match=r"\(\.\.\., 3\).*\(5, 4\)"):
        Linear(3, 2)(np.ones((5, 4)))


def test_embedding_gathers_and_sums_repeated_gradients():
    ours, theirs = Embedding(10, 4, seed=0), torch.nn.Embedding(10, 4).double()
    _copy_from_torch(ours, theirs)
    ids = np.array([[1, 3, 1], [9, 0, 1]])
    y, ty = ours(ids), theirs(torch.tensor(ids))
    np.testing.assert_allclose(y.data, ty.detach().numpy())
    g = np.random.default_rng(0).standard_normal(y.shape)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), **TOL)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        ours(np.array([10]))


@settings(max_examples=10, deadline=None)
@given(
    layers=st.integers(1, 2),
    B=st.integers(1, 3),
    T=st.integers(1, 6),
    with_state=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_rnn_forward_and_bptt_match_torch(layers, B, T, with_state, seed):
    torch.manual_seed(seed)
    theirs = torch.nn.RNN(3, 5, num_layers=layers, batch_first=True).double()
    ours = RNN(3, 5, num_layers=layers)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((B, T, 3))
    h0 = rng.standard_normal((layers, B, 5)) if with_state else None
    x, tx = Tensor(x0, requires_grad=True), _t(x0, True)
    h, th = (Tensor(h0, requires_grad=True), _t(h0, True)) if with_state else (None, None)
    out, hn = ours(x, h)
    t_out, t_hn = theirs(tx, th)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), **TOL)
    np.testing.assert_allclose(hn.data, t_hn.detach().numpy(), **TOL)
    g_out, g_h = rng.standard_normal(out.shape), rng.standard_normal(hn.shape)
    # One scalar that depends on every output and on the final state.
    ((out * g_out).sum() + (hn * g_h).sum()).backward()
    ((t_out * torch.tensor(g_out)).sum() + (t_hn * torch.tensor(g_h)).sum()).backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    if with_state:
        np.testing.assert_allclose(h.grad, th.grad.numpy(), **TOL)
    _assert_param_grads(ours, theirs)


@settings(max_examples=10, deadline=None)
@given(
    layers=st.integers(1, 2),
    B=st.integers(1, 3),
    T=st.integers(1, 6),
    with_state=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_lstm_forward_and_bptt_match_torch(layers, B, T, with_state, seed):
    torch.manual_seed(seed)
    theirs = torch.nn.LSTM(3, 4, num_layers=layers, batch_first=True).double()
    ours = LSTM(3, 4, num_layers=layers)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal((B, T, 3))
    x, tx = Tensor(x0, requires_grad=True), _t(x0, True)
    if with_state:
        h0, c0 = rng.standard_normal((2, layers, B, 4))
        state, t_state = (
            (Tensor(h0, requires_grad=True), Tensor(c0, requires_grad=True)),
            (_t(h0, True), _t(c0, True)),
        )
    else:
        state = t_state = None
    out, (hn, cn) = ours(x, state)
    t_out, (t_hn, t_cn) = theirs(tx, t_state)
    for a, b in ((out, t_out), (hn, t_hn), (cn, t_cn)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), **TOL)
    gs = [rng.standard_normal(a.shape) for a in (out, hn, cn)]
    sum((a * g).sum() for a, g in zip((out, hn, cn), gs)).backward()
    sum((a * torch.tensor(g)).sum() for a, g in zip((t_out, t_hn, t_cn), gs)).backward()
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    if with_state:
        for a, b in zip(state, t_state):
            np.testing.assert_allclose(a.grad, b.grad.numpy(), **TOL)
    _assert_param_grads(ours, theirs)


def test_cells_match_torch_cells():
    rng = np.random.default_rng(0)
    x0, h0, c0 = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    rc, t_rc = RNNCell(3, 4), torch.nn.RNNCell(3, 4).double()
    _copy_from_torch(rc, t_rc)
    np.testing.assert_allclose(rc(x0, h0).data, t_rc(_t(x0), _t(h0)).detach().numpy(), **TOL)
    lc, t_lc = LSTMCell(3, 4), torch.nn.LSTMCell(3, 4).double()
    _copy_from_torch(lc, t_lc)
    (h, c), (th, tc) = lc(x0, (h0, c0)), t_lc(_t(x0), (_t(h0), _t(c0)))
    np.testing.assert_allclose(h.data, th.detach().numpy(), **TOL)
    np.testing.assert_allclose(c.data, tc.detach().numpy(), **TOL)


def test_recurrent_bad_input():
    with pytest.raises(ValueError, match=r"\(B, T, input_size\).*\(2, 3\)"):
        RNN(3, 4)(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(1, 2, 4\).*\(2, 4\)"):
        LSTM(3, 4)(np.ones((2, 5, 3)), (np.ones((2, 4)), np.ones((2, 4))))


@pytest.mark.parametrize("mode", ["none", "causal", "bool_mask", "float_mask"])
@settings(max_examples=10, deadline=None)
@given(Tq=st.integers(1, 5), Tk=st.integers(1, 5), seed=st.integers(0, 1000))
def test_sdpa_matches_torch(mode, Tq, Tk, seed):
    rng = np.random.default_rng(seed)
    if mode == "causal":
        Tk = Tq
    arrays = [
        rng.standard_normal((2, 3, Tq, 4)),
        rng.standard_normal((2, 3, Tk, 4)),
        rng.standard_normal((2, 3, Tk, 5)),
    ]
    mask = None
    if mode == "bool_mask":
        mask = rng.random((2, 1, Tq, Tk)) > 0.4
        mask[..., 0] = True  # every query sees at least one key (else NaN in both)
    elif mode == "float_mask":
        mask = rng.standard_normal((Tq, Tk))
    ours = [Tensor(a, requires_grad=True) for a in arrays]
    theirs = [_t(a, True) for a in arrays]
    out = scaled_dot_product_attention(*ours, mask=mask, is_causal=mode == "causal")
    t_mask = None if mask is None else torch.tensor(mask)
    t_out = F.scaled_dot_product_attention(*theirs, attn_mask=t_mask, is_causal=mode == "causal")
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), **TOL)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    t_out.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **TOL)


def test_causal_attention_ignores_the_future():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 4, 3)) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, is_causal=True, return_weights=True)
    np.testing.assert_allclose(np.triu(w.data[0], 1), 0.0)
    np.testing.assert_allclose(w.data.sum(-1), 1.0)
    v2 = v.copy()
    v2[:, -1] += 100.0  # changing the last value must not change earlier outputs
    out2 = scaled_dot_product_attention(q, k, v2, mask=causal_mask(4))
    np.testing.assert_allclose(out2.data[:, :-1], out.data[:, :-1])


@pytest.mark.parametrize("variant", ["self", "cross", "causal", "padding"])
def test_multihead_attention_matches_torch(variant):
    torch.manual_seed(0)
    E, H = 8, 2
    theirs = torch.nn.MultiheadAttention(E, H, batch_first=True).double()
    with torch.no_grad():  # torch zero-initialises the biases; randomise so they are tested
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = MultiHeadAttention(E, H)
    _copy_from_torch(ours, theirs)
    rng = np.random.default_rng(1)
    q0 = rng.standard_normal((2, 5, E))
    kv0 = q0 if variant != "cross" else rng.standard_normal((2, 3, E))
    q, tq = Tensor(q0, requires_grad=True), _t(q0, True)
    kv, tkv = (q, tq) if variant != "cross" else (Tensor(kv0, requires_grad=True), _t(kv0, True))
    kwargs, t_kwargs = {}, {}
    if variant == "causal":
        kwargs["mask"] = causal_mask(5)
        t_kwargs["attn_mask"] = torch.tensor(~causal_mask(5))  # torch MHA: True = NOT allowed
    if variant == "padding":
        pad = np.zeros((2, 5), dtype=bool)
        pad[1, 3:] = True
        kwargs["key_padding_mask"] = pad
        t_kwargs["key_padding_mask"] = torch.tensor(pad)
    out, w = ours(q, kv, kv, return_weights=True, **kwargs)
    t_out, t_w = theirs(tq, tkv, tkv, average_attn_weights=False, **t_kwargs)
    np.testing.assert_allclose(out.data, t_out.detach().numpy(), **TOL)
    np.testing.assert_allclose(w.data, t_w.detach().numpy(), **TOL)
    g = rng.standard_normal(out.shape)
    out.backward(g)
    t_out.backward(torch.tensor(g))
    np.testing.assert_allclose(q.grad, tq.grad.numpy(), **TOL)
    if variant == "cross":
        np.testing.assert_allclose(kv.grad, tkv.grad.numpy(), **TOL)
    _assert_param_grads(ours, theirs)


def test_single_head_attention_equals_sdpa_of_projections():
    rng = np.random.default_rng(0)
    att = SingleHeadAttention(6, head_dim=4, seed=0)
    x0 = rng.standard_normal((2, 5, 6))
    out = att(x0, is_causal=True)
    tx = _t(x0)
    proj = [tx @ _t(lin.weight.data).T + _t(lin.bias.data) for lin in (att.query, att.key, att.value)]
    expected = F.scaled_dot_product_attention(*proj, is_causal=True)
    np.testing.assert_allclose(out.data, expected.numpy(), **TOL)
    assert len(att.parameters()) == 6


@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 7)])
def test_cross_entropy_matches_torch(shape):
    rng = np.random.default_rng(0)
    logits0 = 10 * rng.standard_normal(shape)  # large logits: stability matters
    targets = rng.integers(0, shape[-1], size=shape[:-1])
    targets.reshape(-1)[1] = -100  # one ignored (padding) position
    for reduction in ("mean", "sum", "none"):
        x, tx = Tensor(logits0, requires_grad=True), _t(logits0, True)
        loss = cross_entropy(x, targets, reduction=reduction)
        t_loss = F.cross_entropy(
            tx.reshape(-1, shape[-1]), torch.tensor(targets.reshape(-1)), reduction=reduction
        )
        if reduction == "none":
            t_loss = t_loss.reshape(shape[:-1])
        np.testing.assert_allclose(loss.data, t_loss.detach().numpy(), **TOL)
        g = rng.standard_normal(loss.shape)
        loss.backward(g)
        t_loss.backward(torch.tensor(g))
        np.testing.assert_allclose(x.grad, tx.grad.numpy(), **TOL)
    with pytest.raises(ValueError, match="targets of shape"):
        cross_entropy(logits0, targets[..., :1])
    with pytest.raises(TypeError, match="integer"):
        cross_entropy(logits0, targets.astype(float))


def test_mse_matches_torch():
    rng = np.random.default_rng(0)
    p0, y0 = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    p, tp = Tensor(p0, requires_grad=True), _t(p0, True)
    loss, t_loss = mse_loss(p, y0), F.mse_loss(tp, _t(y0))
    loss.backward()
    t_loss.backward()
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(p.grad, tp.grad.numpy(), **TOL)
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 1\)"):
        mse_loss(p, np.ones((4, 1)))


def test_state_dict_round_trip_and_errors():
    a, b = MLP([2, 3, 1], seed=0), MLP([2, 3, 1], seed=1)
    b.load_state_dict(a.state_dict())
    for (n1, p1), (n2, p2) in zip(a.named_parameters(), b.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    with pytest.raises(KeyError, match="missing"):
        b.load_state_dict({})
    bad = a.state_dict()
    bad["layers.0.weight"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match="layers.0.weight"):
        b.load_state_dict(bad)
    a.zero_grad()
    assert all(p.grad is None for p in a.parameters())
