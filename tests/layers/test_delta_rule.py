"""The delta rule (bestiary.layers.delta_rule): the chunkwise (UT transform / WY) form equals the
recurrence, in outputs, final state and gradients, for every decay kind; and the recurrence is
the paper's equation written out naively."""

import pytest
import torch

from bestiary.layers.delta_rule import (
    ShortConv,
    delta_rule,
    delta_rule_chunkwise,
    delta_rule_recurrent,
    l2_normalize,
    mlp_memory_grads,
    mlp_memory_read,
)

B, T, H, DK, DV = 2, 11, 2, 4, 3


def _inputs(decay, seed=0, T=T):
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    q, k, v = randn(B, T, H, DK), l2_normalize(randn(B, T, H, DK)), randn(B, T, H, DV)
    beta = torch.sigmoid(randn(B, T, H))
    log_decay = {
        "none": None,
        "scalar": -torch.rand(B, T, H, generator=g, dtype=torch.float64),
        "channel": -torch.rand(B, T, H, DK, generator=g, dtype=torch.float64),
    }[decay]
    state = randn(B, H, DK, DV)
    return q, k, v, beta, log_decay, state


def test_recurrence_is_the_papers_update_written_naively():
    """S_t = alpha_t S_{t-1} (I - beta k k^T) + beta v k^T (values x keys, the paper's layout)."""
    q, k, v, beta, log_decay, state = _inputs("channel")
    o, final = delta_rule_recurrent(q, k, v, beta, log_decay, state)
    for b in range(B):
        for h in range(H):
            S = state[b, h].T.clone()  # (d_v, d_k)
            for t in range(T):
                kt, bt = k[b, t, h][:, None], beta[b, t, h]
                S = S @ torch.diag(log_decay[b, t, h].exp())  # per-key-channel forgetting
                S = (
                    S @ (torch.eye(DK, dtype=torch.float64) - bt * kt @ kt.T)
                    + bt * v[b, t, h][:, None] @ kt.T
                )
                torch.testing.assert_close(o[b, t, h], S @ q[b, t, h], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(final[b, h], S.T, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("decay", ["none", "scalar", "channel"])
@pytest.mark.parametrize("chunk_size", [1, 3, 4, 16])  # 3 and 4 do not divide T = 11; 16 > T
def test_chunkwise_equals_recurrent_outputs_state_and_gradients(decay, chunk_size):
    inputs = [x.requires_grad_() for x in _inputs(decay) if x is not None]

    def unpack(xs):
        return xs if decay != "none" else (*xs[:4], None, xs[4])

    o_r, s_r = delta_rule_recurrent(*unpack(inputs))
    o_c, s_c = delta_rule_chunkwise(*unpack(inputs), chunk_size=chunk_size)
    torch.testing.assert_close(o_c, o_r, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(s_c, s_r, rtol=1e-10, atol=1e-10)
    weights = torch.randn_like(o_r), torch.randn_like(s_r)
    grads_r = torch.autograd.grad((o_r * weights[0]).sum() + (s_r * weights[1]).sum(), inputs)
    grads_c = torch.autograd.grad((o_c * weights[0]).sum() + (s_c * weights[1]).sum(), inputs)
    for gr, gc in zip(grads_r, grads_c):
        torch.testing.assert_close(gc, gr, rtol=1e-9, atol=1e-9)


def test_without_decay_and_with_beta_one_the_key_is_overwritten():
    """beta = 1, unit key: after the write, reading the same key returns exactly the new value."""
    q, k, v, beta, _, state = _inputs("none", T=1)
    k = torch.nn.functional.normalize(k, dim=-1)  # exactly unit length
    o, S = delta_rule(k, k, v, torch.ones_like(beta), None, state)
    torch.testing.assert_close(o, v, rtol=1e-12, atol=1e-12)


def test_splitting_the_sequence_and_carrying_the_state_changes_nothing():
    q, k, v, beta, log_decay, state = _inputs("scalar")
    full, final = delta_rule(q, k, v, beta, log_decay, state, chunk_size=4)
    first, mid = delta_rule(q[:, :6], k[:, :6], v[:, :6], beta[:, :6], log_decay[:, :6], state, chunk_size=4)
    second, end = delta_rule(q[:, 6:], k[:, 6:], v[:, 6:], beta[:, 6:], log_decay[:, 6:], mid, chunk_size=4)
    torch.testing.assert_close(torch.cat([first, second], 1), full, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(end, final, rtol=1e-10, atol=1e-10)


def test_unknown_mode_is_refused():
    q, k, v, beta, _, _ = _inputs("none")
    with pytest.raises(ValueError, match="mode must be one of"):
        delta_rule(q, k, v, beta, mode="parallel")


def test_short_conv_window_continues_the_convolution():
    torch.manual_seed(0)
    conv = ShortConv(5, 4).double()
    x = torch.randn(2, 9, 5, dtype=torch.float64)
    full, _ = conv(x)
    reference = torch.nn.functional.silu(
        torch.nn.functional.conv1d(x.transpose(1, 2), conv.conv.weight, padding=3, groups=5)[..., :9]
    ).transpose(1, 2)
    torch.testing.assert_close(full, reference)
    first, window = conv(x[:, :5])
    second, _ = conv(x[:, 5:], window)
    torch.testing.assert_close(torch.cat([first, second], 1), full)


def test_mlp_memory_grads_equal_autograd():
    """Per-token gradients of any loss through M(k) = SiLU(k W1) W2 (Titans, MIRAS)."""
    g = torch.Generator().manual_seed(0)
    k = torch.randn(2, 5, 3, 4, generator=g, dtype=torch.float64)
    W1 = torch.randn(2, 3, 4, 6, generator=g, dtype=torch.float64, requires_grad=True)
    W2 = torch.randn(2, 3, 6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    out, pre, hidden = mlp_memory_read(k, W1, W2)
    grad_out = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grad_W1, grad_W2 = mlp_memory_grads(k, W2, pre, hidden, grad_out)
    for t in (0, 3):  # token t's gradient is the gradient of its own term alone
        expected = torch.autograd.grad((out[:, t] * grad_out[:, t]).sum(), (W1, W2), retain_graph=True)
        torch.testing.assert_close(grad_W1[:, t], expected[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(grad_W2[:, t], expected[1], rtol=1e-12, atol=1e-12)
