"""gsa: the paper's slot recurrences (K_t, V_t gated by alpha_t, softmax over slots) written as a
loop in float64 are what every form computes; the forms agree; decoding matches."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64


def test_mixer_equals_the_papers_slot_recurrence():
    mixer = build_float64("gsa").blocks[0].mixer
    B, T, H, m, Dh = 2, 9, 2, 4, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q, k, v = mixer.qkv_proj(x).view(B, T, 3, H, Dh).unbind(2)  # (B, T, H, Dh)
    q, k = F.silu(q) / Dh**0.5, F.silu(k)
    alpha = torch.sigmoid(mixer.slot_gate(x)).pow(1 / 8).view(B, T, H, m)
    K = torch.zeros(B, H, m, Dh, dtype=torch.float64)
    V = torch.zeros(B, H, m, Dh, dtype=torch.float64)
    outs = []
    for t in range(T):
        a = alpha[:, t, :, :, None]  # (B, H, m, 1)
        K = a * K + (1 - a) * k[:, t, :, None, :]
        V = a * V + (1 - a) * v[:, t, :, None, :]
        p = torch.einsum("bhmd,bhd->bhm", K, q[:, t]).softmax(-1)
        outs.append(torch.einsum("bhm,bhmd->bhd", p, V))
    o = torch.stack(outs, 1).reshape(B, T, 16)
    o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-6) * mixer.norm.weight
    expected = mixer.out_proj(o * F.silu(mixer.out_gate(x)))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-7)  # RMSNorm runs in float32


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("gsa"))


def test_cached_decoding_equals_the_whole_with_slot_sized_states():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("gsa"))
    assert before == after == 2 * (2 * 2 * 4 * 8 * 8) * 2  # layers x (K and V: B, H, m, Dh) float64
