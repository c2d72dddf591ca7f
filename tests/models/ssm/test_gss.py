"""GSS: the paper's pseudocode (its Figure 1) written out with a naive S4D loop in float64 is the
oracle; convolution == recurrence (logits and gradients); whole == chunked == token by token."""

import torch
import torch.nn.functional as F
from ssm_helpers import assert_cache_steps_equal_full, assert_modes_agree

import bestiary


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("gss", tiny=True, **overrides).double()


def test_mixer_matches_the_gss_pseudocode():
    mixer = _build().blocks[0].mixer
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    v = F.gelu(x @ mixer.gate_proj.weight.T + mixer.gate_proj.bias)  # (B, T, F)
    u = F.gelu(x @ mixer.ssm_in.weight.T + mixer.ssm_in.bias)  # (B, T, H)
    ssm = mixer.ssm
    A = torch.complex(-torch.exp(ssm.log_neg_real), ssm.imag)
    dt = torch.exp(ssm.log_dt)[:, None]
    C = torch.view_as_complex(ssm.C)
    state, ys = torch.zeros(2, 8, 4, dtype=torch.complex128), []
    for t in range(9):  # S4D recurrence, B = 1, ZOH
        state = torch.exp(dt * A) * state + (torch.exp(dt * A) - 1) / A * u[:, t, :, None]
        ys.append(2 * (C * state).sum(-1).real + ssm.D * u[:, t])
    y = torch.stack(ys, 1)
    uc = y @ mixer.ssm_out.weight.T + mixer.ssm_out.bias
    expected = (uc * v) @ mixer.out_proj.weight.T + mixer.out_proj.bias
    torch.testing.assert_close(mixer(x), expected)


def test_convolution_equals_recurrence_logits_and_gradients():
    assert_modes_agree(lambda mode: _build(mode=mode), 64, ("convolution", "recurrent"))


def test_whole_equals_chunks_equals_token_steps():
    cache = assert_cache_steps_equal_full(_build().eval(), 64)
    assert cache[0]["h"].shape == (2, 8, 4)
