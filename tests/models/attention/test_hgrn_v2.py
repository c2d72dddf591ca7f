"""hgrn_v2: the paper's expanded recurrence S_t = diag(f_t) S_{t-1} + (1 - f_t)^T i_t, written as a
loop in float64, is what every form computes; with one-channel heads it is HGRN's elementwise
recurrence; the forms agree; decoding matches with a fixed state."""

import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64


def test_mixer_equals_the_papers_outer_product_recurrence():
    model = build_float64("hgrn_v2")
    mixer = model.blocks[1].mixer
    B, T, H, Dh = 2, 9, 2, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    lb = torch.softmax(model.blocks[0].mixer.lower_bounds.logits, 0)[0]  # layer 1's bound
    f = (lb + (1 - lb) * torch.sigmoid(mixer.forget_proj(x))).view(B, T, H, Dh)
    q = F.silu(mixer.q_proj(x)).view(B, T, H, Dh)
    i = mixer.input_proj(x).view(B, T, H, Dh)
    S, outs = torch.zeros(B, H, Dh, Dh, dtype=torch.float64), []
    for t in range(T):
        S = f[:, t, :, :, None] * S + (1 - f[:, t, :, :, None]) * i[:, t, :, None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    o = torch.stack(outs, 1).reshape(B, T, 16)
    expected = mixer.out_proj(o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + 1e-6) * mixer.norm.weight)
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-7)  # RMSNorm runs in float32


def test_one_channel_heads_reduce_to_hgrns_elementwise_recurrence():
    mixer = build_float64("hgrn_v2", n_heads=16).blocks[0].mixer  # head_dim 1: no expansion
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    f, q, i = mixer.forget_gate(x), F.silu(mixer.q_proj(x)), mixer.input_proj(x)
    h, hs = torch.zeros(1, 16, dtype=torch.float64), []
    for t in range(6):
        h = f[:, t] * h + (1 - f[:, t]) * i[:, t]  # HGRN-1
        hs.append(q[:, t] * h)
    o = torch.stack(hs, 1)
    expected = mixer.out_proj(mixer.norm(o))
    torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-7)  # RMSNorm runs in float32


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("hgrn_v2"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("hgrn_v2"))
    assert before == after == 2 * (2 * 2 * 8 * 8 * 8)
