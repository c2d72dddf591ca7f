"""retnet: the paper's parallel retention (Q K^T ⊙ D) V with D_nm = gamma^(n-m), written naively in
float64, is what the mixer computes; the three forms agree; decoding keeps a fixed-size state."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.positions import apply_rotary


def test_decays_follow_the_paper():
    mixer = build_float64("retnet", n_heads=4, d_model=16).blocks[0].mixer
    torch.testing.assert_close(
        mixer.log_decay(torch.zeros(1, 1, 16, dtype=torch.float64)).exp(),
        torch.tensor([1 - 1 / 32, 1 - 1 / 64, 1 - 1 / 128, 1 - 1 / 256], dtype=torch.float64),
    )


def test_mixer_equals_the_papers_parallel_retention():
    mixer = build_float64("retnet").blocks[0].mixer
    B, T, H, Dh, Dv = 2, 9, 2, 8, 16
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q = mixer.q_proj(x).view(B, T, H, Dh).transpose(1, 2)
    k = mixer.k_proj(x).view(B, T, H, Dh).transpose(1, 2)
    v = mixer.v_proj(x).view(B, T, H, Dv).transpose(1, 2)
    cos, sin = mixer.rope.cos_sin(torch.arange(T))
    q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin) / Dh**0.5
    gamma = 1 - 2.0 ** (-5 - torch.arange(H, dtype=torch.float64))
    n = torch.arange(T)
    D = torch.where(
        n[:, None] >= n[None, :], gamma[:, None, None] ** (n[:, None] - n[None, :]), 0.0
    )  # (H, T, T)
    retention = ((q @ k.transpose(-1, -2)) * D) @ v  # (B, H, T, Dv)
    normed = F.group_norm(
        retention.transpose(1, 2).reshape(B * T, H * Dv), H, mixer.group_norm.weight, mixer.group_norm.bias
    )
    expected = mixer.out_proj(F.silu(mixer.gate_proj(x)) * normed.view(B, T, -1))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-9, atol=1e-10)


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("retnet"))


def test_cached_decoding_equals_the_whole_with_a_constant_state():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("retnet"))
    assert before == after == 2 * (2 * 2 * 8 * 16 * 8)  # layers x (B, H, Dh, Dv) float64
