"""H3: the shift SSM is an exact shift register; the whole layer written naively (loops over heads
and time, float64) is the oracle; convolution == recurrence (logits and gradients); whole ==
chunked == token by token."""

import torch
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary
from bestiary.models.ssm.h3 import ShiftSSM


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("h3", tiny=True, **overrides).double()


def test_shift_ssm_state_is_a_register_of_the_last_inputs():
    torch.manual_seed(0)
    shift = ShiftSSM(3, 4).double()
    u = torch.randn(2, 7, 3, dtype=torch.float64)
    for mode in ("convolution", "recurrent"):
        y, register = shift(u, mode=mode)
        assert torch.equal(register, u[:, 3:].flip(1).transpose(1, 2))  # (u_6, u_5, u_4, u_3), exactly
    # the output is the taps applied to the register: y_t = sum_n C_n u_{t-n}
    padded = torch.cat([torch.zeros(2, 3, 3, dtype=torch.float64), u], 1)
    expected = sum(shift.C[:, n] * padded[:, 3 - n : 10 - n] for n in range(4))
    torch.testing.assert_close(shift(u)[0], expected)
    torch.testing.assert_close(shift(u, mode="recurrent")[0], expected)


def test_mixer_matches_the_h3_equations_written_naively():
    mixer = _build().blocks[0].mixer
    x = torch.randn(1, 8, 16, dtype=torch.float64)
    q, k, v = mixer.q_proj(x)[0], mixer.k_proj(x)[0], mixer.v_proj(x)[0]  # (T, D)
    C = mixer.shift_ssm.C
    k_shift = torch.stack([sum(C[:, n] * k[t - n] for n in range(4) if t - n >= 0) for t in range(8)])
    K = mixer.diag_ssm.kernel(8)  # (H, T): the S4D kernel (its own oracle is in test_ssm_kernels.py)
    D = mixer.diag_ssm.D
    y = torch.zeros(8, 16, dtype=torch.float64)
    for h in range(4):
        heads = slice(4 * h, 4 * h + 4)
        kv = k_shift[:, heads, None] * v[:, None, heads]  # (T, d, d)
        for t in range(8):
            memory = sum(K[h, t - s] * kv[s] for s in range(t + 1)) + D[h] * kv[t]
            y[t, heads] = q[t, heads] @ memory
    torch.testing.assert_close(mixer(x)[0], mixer.out_proj(y))


def test_convolution_equals_recurrence_logits_and_gradients():
    assert_modes_agree(lambda mode: _build(mode=mode), 64, ("convolution", "recurrent"))


def test_whole_equals_chunks_equals_token_steps():
    cache = assert_cache_steps_equal_full(_build().eval(), 64)
    assert cache[0]["shift"].shape == (2, 16, 4) and cache[0]["h"].shape == (2 * 16, 4, 4)
