"""linear_transformer: the mixer equals the paper's causal formula written naively (float64), its
three forms agree, and decoding keeps a constant-size state."""

import torch
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64


def test_mixer_equals_the_naive_causal_kernel_attention():
    model = build_float64("linear_transformer")
    mixer = model.blocks[0].mixer
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    B, T, H, Dh = 2, 9, 2, 8
    q, k, v = (p(x).view(B, T, H, Dh).transpose(1, 2) for p in (mixer.q_proj, mixer.k_proj, mixer.v_proj))
    phi = lambda t: torch.where(t > 0, t + 1, t.exp())  # noqa: E731 -- elu(x) + 1, written out
    out = torch.zeros(B, H, T, Dh, dtype=torch.float64)
    for t in range(T):
        weights = (phi(q[:, :, t, None]) * phi(k[:, :, : t + 1])).sum(-1)  # (B, H, t+1)
        out[:, :, t] = (weights[..., None] * v[:, :, : t + 1]).sum(2) / (
            weights.sum(-1, keepdim=True) + 1e-6
        )  # the eps
    expected = mixer.out_proj(out.transpose(1, 2).reshape(B, T, 16))
    for mode in ("parallel", "chunkwise", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-10, atol=1e-12)


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("linear_transformer"))


def test_cached_decoding_equals_the_whole_with_a_constant_state():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("linear_transformer"))
    assert before == after == 2 * (2 * 2 * 8 * 9 * 8)  # 2 layers x (B, H, Dh, Dh + 1) float64
