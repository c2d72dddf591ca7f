"""retnet_v2 (gated retention): the parallel formula (Q K^T ⊙ D) V with the data-dependent
D_nm = prod_{i=m+1..n} gamma_i, written naively in float64, is what every form computes; the decay
depends on the tokens and starts at RetNet's gammas; decoding matches."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.positions import apply_rotary


def test_mixer_equals_gated_retention_written_naively():
    mixer = build_float64("retnet_v2").blocks[0].mixer
    B, T, H, Dh = 2, 9, 2, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q = mixer.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
    k = mixer.k_proj(x).view(B, T, H, Dh).transpose(1, 2)
    v = mixer.v_proj(x).view(B, T, H, Dh).transpose(1, 2)
    cos, sin = mixer.rope.cos_sin(torch.arange(T))
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin) / Dh**0.5
    gamma = torch.sigmoid(mixer.decay_proj(x)).pow(1 / 16).transpose(1, 2)  # (B, H, T)
    D = torch.zeros(B, H, T, T, dtype=torch.float64)
    for n in range(T):
        for m in range(n + 1):
            D[:, :, n, m] = gamma[:, :, m + 1 : n + 1].prod(-1)
    retention = ((q @ k.transpose(-1, -2)) * D) @ v
    gn = mixer.group_norm
    normed = F.group_norm(retention.transpose(1, 2).reshape(B * T, H * Dh), H, gn.weight, gn.bias)
    expected = mixer.out_proj(F.silu(mixer.gate_proj(x)) * normed.view(B, T, -1))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-9, atol=1e-10)


def test_decay_depends_on_the_tokens_and_starts_near_retnets():
    mixer = build_float64("retnet_v2").blocks[0].mixer
    with torch.no_grad():
        mixer.decay_proj.weight.zero_()
    gamma = mixer.log_decay(torch.randn(1, 3, 16, dtype=torch.float64)).exp()  # (1, H, T)
    torch.testing.assert_close(gamma[0, :, 0], 1 - 2.0 ** (-5 - torch.arange(2, dtype=torch.float64)))
    fresh = build_float64("retnet_v2").blocks[0].mixer
    assert fresh.log_decay(torch.randn(1, 5, 16, dtype=torch.float64)).std(-1).min() > 0


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("retnet_v2"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("retnet_v2"))
    assert before == after == 2 * (2 * 2 * 8 * 8 * 8)
