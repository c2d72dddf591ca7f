"""based: the Taylor layer equals the normalised kernel 1 + s + s^2/2 (s = q.k / sqrt(d')) written
naively in float64; sliding-window layers see only the window; the forms agree; decoding matches."""

import torch
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.attention import MultiHeadAttention


def test_taylor_layer_equals_the_normalised_second_order_kernel():
    mixer = build_float64("based").blocks[0].mixer
    B, T, H, F, Dh = 2, 9, 2, 4, 8
    x = torch.randn(B, T, 16, dtype=torch.float64)
    q = mixer.q_proj(x).view(B, T, H, F).transpose(1, 2)
    k = mixer.k_proj(x).view(B, T, H, F).transpose(1, 2)
    v = mixer.v_proj(x).view(B, T, H, Dh).transpose(1, 2)
    s = q @ k.transpose(-1, -2) / F**0.5  # (B, H, T, T)
    weights = (1 + s + s**2 / 2).tril()
    out = (weights @ v) / (weights.sum(-1, keepdim=True) + 1e-6)
    expected = mixer.out_proj(out.transpose(1, 2).reshape(B, T, 16))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-10, atol=1e-12)


def test_layers_alternate_and_sliding_window_layers_see_only_the_window():
    model = build_float64("based", n_layers=4)
    kinds = [type(block.mixer).__name__ for block in model.blocks]
    assert kinds == ["TaylorLinearAttention", "MultiHeadAttention"] * 2
    swa = model.blocks[1].mixer
    assert isinstance(swa, MultiHeadAttention) and swa.window == 4
    x = torch.randn(1, 10, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 5] += 1.0  # position 5 is outside the window of position 9 (positions 6..9)
    torch.testing.assert_close(swa(changed)[:, 9], swa(x)[:, 9])
    changed[:, 6] += 1.0  # position 6 is inside it
    assert not torch.allclose(swa(changed)[:, 9], swa(x)[:, 9])


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("based"))


def test_cached_decoding_equals_the_whole():
    assert_cached_pieces_equal_the_whole(build_float64("based"))
