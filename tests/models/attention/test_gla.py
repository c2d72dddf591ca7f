"""gla: the paper's gated recurrence S_t = diag(alpha_t) S_{t-1} + k_t^T v_t written as a loop in
float64 is what every form computes; the gates are per channel and data-dependent."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64


def test_mixer_equals_the_papers_gated_recurrence():
    mixer = build_float64("gla").blocks[0].mixer
    B, T, H, Dk, Dv = 2, 9, 2, 4, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q = mixer.q_proj(x).view(B, T, H, Dk) / Dk**0.5
    k = mixer.k_proj(x).view(B, T, H, Dk)
    v = mixer.v_proj(x).view(B, T, H, Dv)
    alpha = torch.sigmoid(mixer.gate_up(mixer.gate_down(x))).pow(1 / 16).view(B, T, H, Dk)
    S = torch.zeros(B, H, Dk, Dv, dtype=torch.float64)
    outs = []
    for t in range(T):
        S = alpha[:, t, :, :, None] * S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    o = torch.stack(outs, 1)  # (B, T, H, Dv)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-6) * mixer.head_norm.weight
    expected = mixer.out_proj(F.silu(mixer.out_gate(x)) * o.reshape(B, T, 16))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        # layers.norms.RMSNorm normalises in float32 even for float64 input: float32-level agreement
        torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-7)


def test_gates_differ_per_channel_and_per_token():
    mixer = build_float64("gla").blocks[0].mixer
    log_alpha = mixer.log_forget_gate(torch.randn(1, 5, 16, dtype=torch.float64))  # (1, 5, key_dim)
    assert log_alpha.shape == (1, 5, 8) and (log_alpha <= 0).all()
    assert log_alpha.std(dim=1).min() > 0 and log_alpha.std(dim=2).min() > 0


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("gla"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("gla"))
    assert before == after == 2 * (2 * 2 * 4 * 8 * 8)
