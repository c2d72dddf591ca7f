"""The shared linear-attention machinery: the three forms agree for every decay kind (outputs and
gradients, float64), pieces with a carried state equal the whole, and the feature maps compute
the kernels they claim."""

import math

import pytest
import torch

from bestiary.layers.linear_attention import (
    chunkwise_parts,
    elu_plus_one,
    forget_gate_lower_bounds,
    linear_attention,
    orthogonal_random_features,
    relu_features,
    taylor_features,
)

B, H, T, DK, DV = 2, 3, 10, 4, 5


def _inputs(kind, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, T, DK, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, T, DV, generator=g, dtype=torch.float64)
    state = torch.randn(B, H, DK, DV, generator=g, dtype=torch.float64)
    shapes = {"none": None, "fixed": (H,), "scalar": (B, H, T), "channel": (B, H, T, DK)}
    shape = shapes[kind]
    log_decay = (
        None
        if shape is None
        else torch.nn.functional.logsigmoid(torch.randn(shape, generator=g, dtype=torch.float64) + 1.0)
    )
    return q, k, v, log_decay, state


def _naive(q, k, v, log_decay, state):
    """The equations written out: o_t = sum_{s<=t} sum_c q_tc k_sc exp(G_tc - G_sc) v_s
    + sum_c q_tc exp(G_tc) S0_c."""
    if log_decay is None:
        G = torch.zeros(B, H, T, DK, dtype=q.dtype)
    else:
        full = log_decay[None, :, None] if log_decay.dim() == 1 else log_decay
        full = full.expand(B, H, T) if full.dim() == 3 else full
        G = torch.cumsum(full.unsqueeze(-1).expand(B, H, T, DK) if full.dim() == 3 else full, dim=2)
    out = torch.zeros(B, H, T, DV, dtype=q.dtype)
    for t in range(T):
        out[:, :, t] = torch.einsum("bhc,bhcv->bhv", q[:, :, t] * G[:, :, t].exp(), state)
        for s in range(t + 1):
            weight = (q[:, :, t] * k[:, :, s] * (G[:, :, t] - G[:, :, s]).exp()).sum(-1)  # (B, H)
            out[:, :, t] += weight[..., None] * v[:, :, s]
    return out


KINDS = ["none", "fixed", "scalar", "channel"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_three_forms_equal_the_equations_outputs_and_gradients(kind):
    q, k, v, log_decay, state = _inputs(kind)
    leaves = [t for t in (q, k, v, log_decay, state) if t is not None]
    for t in leaves:
        t.requires_grad_(True)
    reference = _naive(q, k, v, log_decay, state)
    weights = torch.randn_like(reference)
    ref_grads = torch.autograd.grad((reference * weights).sum(), leaves)
    for mode, chunk in [
        ("recurrent", 0),
        ("parallel", 0),
        ("chunkwise", 3),
        ("chunkwise", 4),
        ("chunkwise", 1),
    ]:
        out, _ = linear_attention(
            q, k, v, log_decay, mode=mode, chunk_size=max(chunk, 1), initial_state=state
        )
        torch.testing.assert_close(out, reference, rtol=1e-10, atol=1e-10, msg=f"{mode} {chunk}")
        grads = torch.autograd.grad((out * weights).sum(), leaves)
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9, msg=f"{mode} {chunk} grad")


@pytest.mark.parametrize("kind", KINDS)
def test_pieces_with_the_carried_state_equal_the_whole(kind):
    q, k, v, log_decay, _ = _inputs(kind, seed=1)
    full, full_state = linear_attention(q, k, v, log_decay, mode="parallel")
    state, pieces = None, []
    for start, stop, mode in [
        (0, 4, "chunkwise"),
        (4, 5, "recurrent"),
        (5, 6, "recurrent"),
        (6, T, "parallel"),
    ]:
        piece_decay = log_decay
        if log_decay is not None and log_decay.dim() > 1:
            piece_decay = log_decay[:, :, start:stop]
        out, state = linear_attention(
            q[:, :, start:stop],
            k[:, :, start:stop],
            v[:, :, start:stop],
            piece_decay,
            mode=mode,
            chunk_size=3,
            initial_state=state,
        )
        pieces.append(out)
    torch.testing.assert_close(torch.cat(pieces, dim=2), full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(state, full_state, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("feature_map", [elu_plus_one, relu_features])
def test_the_normaliser_divides_by_the_sum_of_kernel_weights(feature_map):
    q, k, v, _, _ = _inputs("none", seed=2)
    fq, fk = feature_map(q), feature_map(k)
    scores = (fq @ fk.transpose(-1, -2)).tril()  # (B, H, T, T), causal
    expected = (scores @ v) / (scores.sum(-1, keepdim=True) + 1e-6)  # relu may give all-zero weights
    for mode in ("parallel", "chunkwise", "recurrent"):
        out, state = linear_attention(fq, fk, v, mode=mode, chunk_size=3, normalize=True, eps=1e-6)
        torch.testing.assert_close(out, expected)
        assert state.shape == (B, H, DK, DV + 1)  # S and the normaliser's z, side by side


def test_intra_and_inter_chunk_parts_add_up_and_split_where_they_should():
    q, k, v, log_decay, state = _inputs("fixed", seed=3)
    intra, inter, _ = chunkwise_parts(q, k, v, log_decay, chunk_size=4, initial_state=state)
    total, _ = linear_attention(q, k, v, log_decay, mode="recurrent", initial_state=state)
    torch.testing.assert_close(intra + inter, total)
    # one chunk and no past: everything is intra-chunk; chunks of one token: intra is q_t.k_t v_t
    intra, inter, _ = chunkwise_parts(q, k, v, log_decay, chunk_size=T)
    assert inter.abs().max() == 0
    intra, _, _ = chunkwise_parts(q, k, v, log_decay, chunk_size=1)
    torch.testing.assert_close(intra, (q * k).sum(-1, keepdim=True) * v)


def test_strong_decay_over_long_chunks_stays_finite_and_exact():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 200, 4, generator=g) for _ in range(3))
    log_decay = torch.full((1, 2, 200, 4), -30.0)  # exp(-30 * 64) underflows to 0, never inf
    chunked, _ = linear_attention(q, k, v, log_decay, mode="chunkwise", chunk_size=64)
    assert torch.isfinite(chunked).all()
    torch.testing.assert_close(chunked, (q * k).sum(-1, keepdim=True) * v, rtol=1e-5, atol=1e-5)


def test_bad_shapes_and_modes_are_refused():
    q, k, v, _, _ = _inputs("none")
    with pytest.raises(ValueError, match="log_decay must have a shape"):
        linear_attention(q, k, v, torch.zeros(H + 1))
    with pytest.raises(ValueError, match="mode must be one of"):
        linear_attention(q, k, v, mode="fast")
    with pytest.raises(ValueError, match="q, k must be"):
        linear_attention(q, k[..., :2], v)


def test_taylor_features_compute_the_second_order_expansion_of_exp():
    g = torch.Generator().manual_seed(5)
    q, k = (
        torch.randn(7, 6, generator=g, dtype=torch.float64),
        torch.randn(7, 6, generator=g, dtype=torch.float64),
    )
    dot = (q * k).sum(-1)
    torch.testing.assert_close((taylor_features(q) * taylor_features(k)).sum(-1), 1 + dot + dot**2 / 2)
    assert taylor_features(q).shape == (7, 1 + 6 + 36)


def test_orthogonal_random_features_are_orthogonal_within_blocks_with_gaussian_lengths():
    w = orthogonal_random_features(8, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    assert w.shape == (8, 4)
    for block in (w[:4], w[4:]):
        gram = block @ block.T
        torch.testing.assert_close(gram - torch.diag(gram.diag()), torch.zeros(4, 4, dtype=torch.float64))
    many = orthogonal_random_features(4000, 4, generator=torch.Generator().manual_seed(7))
    assert abs(many.pow(2).sum(-1).mean().item() - 4) < 0.2  # E|w|^2 = d for w ~ N(0, I_d)
    assert math.isfinite(many.sum().item())


def test_lower_bounds_start_at_zero_and_rise_with_depth():
    bounds = forget_gate_lower_bounds(torch.randn(5, 3))
    assert torch.all(bounds[0] == 0) and torch.all(bounds < 1)
    assert torch.all(bounds[1:] > bounds[:-1])
