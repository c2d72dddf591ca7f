"""xLSTM cells: the mLSTM's parallel, chunkwise and recurrent forms equal each other (outputs and
gradients) and the paper's equations written naively; both cells equal the reference package's
kernels; the stabiliser keeps huge gate values finite; the mixers decode through their caches."""

import pytest
import torch
import torch.nn.functional as F

from bestiary.layers.xlstm import (
    mlstm_chunkwise,
    mlstm_parallel,
    mlstm_recurrent,
    mLSTMMixer,
    slstm_step,
    sLSTMMixer,
)

B, H, T, DK, DV = 2, 2, 10, 4, 3


def _inputs(seed=0, gate_scale=1.0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, H, T, DK, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(B, H, T, DV, generator=g, dtype=torch.float64)
    log_f = F.logsigmoid(torch.randn(B, H, T, generator=g, dtype=torch.float64) + 2)
    i = torch.randn(B, H, T, generator=g, dtype=torch.float64) * gate_scale
    return [t.requires_grad_() for t in (q, k, v, log_f, i)]


def _naive_mlstm(q, k, v, log_f, i):
    """The paper's equations (arXiv:2405.04517, eq. 19-27) without the stabiliser, in float64:
    C_t = f_t C_{t-1} + i_t v_t k_t^T, n_t = f_t n_{t-1} + i_t k_t, h_t = C_t q_t / max(|n_t^T q_t|, 1)."""
    out = torch.zeros(B, H, T, DV, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            C, n = torch.zeros(DV, DK, dtype=torch.float64), torch.zeros(DK, dtype=torch.float64)
            for t in range(T):
                f_t, i_t = torch.exp(log_f[b, h, t]), torch.exp(i[b, h, t])
                k_t = k[b, h, t] / DK**0.5
                C = f_t * C + i_t * torch.outer(v[b, h, t], k_t)
                n = f_t * n + i_t * k_t
                out[b, h, t] = C @ q[b, h, t] / torch.clamp((n @ q[b, h, t]).abs(), min=1.0)
    return out


def test_mlstm_forms_equal_the_papers_equations():
    args = _inputs()
    expected = _naive_mlstm(*args)
    torch.testing.assert_close(mlstm_parallel(*args, eps=0.0), expected)
    torch.testing.assert_close(mlstm_recurrent(*args, eps=0.0)[0], expected)
    torch.testing.assert_close(mlstm_chunkwise(*args, chunk_size=3, eps=0.0)[0], expected)


@pytest.mark.parametrize("chunk_size", [1, 3, 4, None])
def test_mlstm_chunkwise_and_parallel_equal_the_recurrence_outputs_and_gradients(chunk_size):
    args = _inputs(gate_scale=3.0)
    h_rec, state_rec = mlstm_recurrent(*args)
    h_chunk, state_chunk = mlstm_chunkwise(*args, chunk_size=chunk_size)
    torch.testing.assert_close(h_chunk, h_rec, rtol=1e-10, atol=1e-12)
    for a, b in zip(state_chunk, state_rec, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mlstm_parallel(*args), h_rec, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(h_rec)
    grads = [torch.autograd.grad((h * weights).sum(), args) for h in (h_rec, h_chunk, mlstm_parallel(*args))]
    for other in grads[1:]:
        for g_other, g_rec in zip(other, grads[0], strict=True):
            torch.testing.assert_close(g_other, g_rec, rtol=1e-9, atol=1e-11)


def test_mlstm_chunkwise_continues_from_a_state():
    q, k, v, log_f, i = _inputs()
    full, _ = mlstm_recurrent(q, k, v, log_f, i)
    first, state = mlstm_recurrent(q[:, :, :4], k[:, :, :4], v[:, :, :4], log_f[:, :, :4], i[:, :, :4])
    rest, _ = mlstm_chunkwise(q[:, :, 4:], k[:, :, 4:], v[:, :, 4:], log_f[:, :, 4:], i[:, :, 4:], state, 4)
    torch.testing.assert_close(torch.cat([first, rest], dim=2), full, rtol=1e-10, atol=1e-12)


def test_mlstm_stabiliser_keeps_huge_input_gates_finite():
    """exp(800) overflows float64; the stabilised forms stay finite and agree."""
    q, k, v, log_f, i = _inputs()
    i = i.detach() + 800.0
    h = mlstm_parallel(q, k, v, log_f, i)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(mlstm_chunkwise(q, k, v, log_f, i, chunk_size=3)[0], h)


def test_mlstm_equals_the_reference_package_kernels():
    pytest.importorskip("xlstm")
    from xlstm.blocks.mlstm.backends import parallel_stabilized_simple, recurrent_step_stabilized_simple

    q, k, v, log_f, i = (t.detach() for t in _inputs())
    f_pre = torch.log(torch.expm1(-log_f)).neg()  # the forget pre-activation whose logsigmoid is log_f
    theirs = parallel_stabilized_simple(q, k, v, i[..., None], f_pre[..., None], eps=0.0)
    torch.testing.assert_close(mlstm_parallel(q, k, v, log_f, i, eps=0.0), theirs)
    state = (torch.zeros(B, H, DK, DV, dtype=torch.float64), torch.zeros(B, H, DK, 1, dtype=torch.float64))
    state += (torch.zeros(B, H, 1, 1, dtype=torch.float64),)
    steps = []
    for t in range(T):
        one = (x[:, :, t : t + 1].clone() for x in (q, k, v))
        h, state = recurrent_step_stabilized_simple(
            *state, *one, i[:, :, t, None, None], f_pre[:, :, t, None, None]
        )
        steps.append(h)
    torch.testing.assert_close(mlstm_recurrent(q, k, v, log_f, i)[0], torch.cat(steps, dim=2))


def _slstm_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    gates = torch.randn(B, T, 4, H, 3, generator=g, dtype=torch.float64)
    recurrent = torch.randn(4, H, 3, 3, generator=g, dtype=torch.float64) * 0.5
    return gates, recurrent


def _run_slstm(gates, recurrent):
    zeros = torch.zeros(B, H, 3, dtype=torch.float64)
    state, outputs = (zeros,) * 4, []
    for t in range(T):
        state = slstm_step(gates[:, t], recurrent, state)
        outputs.append(state[0])
    return torch.stack(outputs, dim=1)


def test_slstm_equals_the_papers_equations():
    """Eq. 8-17 without the stabiliser: i = exp(i~), f = sigmoid(f~), c = f c + i tanh(z~),
    n = f n + i, h = sigmoid(o~) c / n, every pre-activation also reading h_{t-1} through its head's
    recurrent matrix."""
    gates, recurrent = _slstm_inputs()
    expected = torch.zeros(B, T, H, 3, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            y, c, n = (torch.zeros(3, dtype=torch.float64) for _ in range(3))
            for t in range(T):
                pre = [gates[b, t, g, h] + y @ recurrent[g, h] for g in range(4)]
                i_t, f_t = torch.exp(pre[0]), torch.sigmoid(pre[1])
                c = f_t * c + i_t * torch.tanh(pre[2])
                n = f_t * n + i_t
                y = torch.sigmoid(pre[3]) * c / n
                expected[b, t, h] = y
    torch.testing.assert_close(_run_slstm(gates, recurrent), expected)


def test_slstm_output_ignores_a_shift_of_every_input_gate():
    """c and n both scale with exp(i~): h does not change, and the stabiliser keeps exp(i~ + 1000)
    (an overflow in float64) finite."""
    gates, recurrent = _slstm_inputs()
    shifted = gates.clone()
    shifted[:, :, 0] += 1000.0
    torch.testing.assert_close(_run_slstm(shifted, recurrent), _run_slstm(gates, recurrent))


@pytest.mark.parametrize("mode", ["parallel", "chunkwise", "recurrent"])
def test_mlstm_mixer_modes_and_cache_agree(mode):
    torch.manual_seed(0)
    mixer = mLSTMMixer(8, 2, mode=mode, chunk_size=3).double()
    reference = mLSTMMixer(8, 2, mode="recurrent").double()
    reference.load_state_dict(mixer.state_dict())
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    full = mixer(x)
    torch.testing.assert_close(full, reference(x), rtol=1e-10, atol=1e-12)
    cache = mixer.init_cache(2)
    pieces = [mixer(x[:, :5], cache=cache)] + [mixer(x[:, t : t + 1], cache=cache) for t in range(5, 9)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)


def test_slstm_mixer_cache_and_head_independence():
    torch.manual_seed(0)
    mixer = sLSTMMixer(8, 2).double()
    with torch.no_grad():
        mixer.recurrent.normal_(std=0.5)
    x = torch.randn(2, 9, 8, dtype=torch.float64)
    full = mixer(x)
    cache = mixer.init_cache(2)
    pieces = [mixer(x[:, :4], cache=cache)] + [mixer(x[:, t : t + 1], cache=cache) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-12)
    # the recurrence is block-diagonal: disturbing head 0's channels never reaches head 1's outputs
    disturbed = x.clone()
    disturbed[:, 0, :4] += 1.0
    out = mixer(disturbed)
    torch.testing.assert_close(out[..., 4:], full[..., 4:])
    assert not torch.allclose(out[:, 3:, :4], full[:, 3:, :4])  # ... but reaches head 0's later steps
