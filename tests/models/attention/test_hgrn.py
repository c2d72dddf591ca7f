"""hgrn: the paper's recurrence written as a loop in float64 (real and complex), the lower bounds
(shared, zero for the first layer, rising with depth) really bound the forget gates, the scan and
the loop agree, and decoding matches."""

import pytest
import torch
import torch.nn.functional as F
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64


@pytest.mark.parametrize("state_kind", ["real", "complex"])
def test_mixer_equals_the_papers_recurrence(state_kind):
    model = build_float64("hgrn", state_kind=state_kind)
    mixer = model.blocks[1].mixer
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    lb = torch.softmax(model.blocks[0].mixer.lower_bounds.logits, 0)[0]  # layer 1: cumsum - first row
    f = lb + (1 - lb) * torch.sigmoid(mixer.forget_proj(x))
    c = F.silu(mixer.input_proj(x))
    if state_kind == "complex":
        c = c[..., :16] + 1j * c[..., 16:]
        f = f * torch.exp(1j * mixer.theta)
        f_abs = f.abs()
    else:
        f_abs = f
    h, hs = torch.zeros(2, 16, dtype=c.dtype), []
    for t in range(9):
        h = f[:, t] * h + (1 - f_abs[:, t]) * c[:, t]
        hs.append(h)
    h = torch.stack(hs, 1)
    if state_kind == "complex":
        h = torch.cat([h.real, h.imag], -1)
    y = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * mixer.norm.weight
    expected = mixer.out_proj(y * F.silu(mixer.gate_proj(x)))
    for mode in ("parallel", "recurrent"):
        mixer.mode = mode
        torch.testing.assert_close(mixer(x), expected, rtol=1e-5, atol=1e-7)  # RMSNorm runs in float32


def test_lower_bounds_are_shared_start_at_zero_and_bound_the_gates():
    model = build_float64("hgrn", n_layers=3)
    mixers = [block.mixer for block in model.blocks]
    assert mixers[0].lower_bounds is mixers[2].lower_bounds
    assert sum(p.numel() for n, p in model.named_parameters() if "logits" in n) == 3 * 16  # counted once
    with torch.no_grad():
        for m in mixers:
            m.forget_proj.bias.fill_(-100.0)  # a gate that wants to forget everything
    x = torch.randn(1, 4, 16, dtype=torch.float64)
    floors = [m.forget_gate(x).min().item() for m in mixers]
    assert floors[0] < 1e-20  # the first layer may forget at once
    assert floors[1] == pytest.approx(1 / 3) and floors[2] == pytest.approx(2 / 3)  # zero logits: 1/L, 2/L


@pytest.mark.parametrize("state_kind", ["real", "complex"])
def test_scan_and_loop_agree_outputs_and_gradients(state_kind):
    assert_modes_agree(build_float64("hgrn", state_kind=state_kind), modes=("parallel", "recurrent"))


@pytest.mark.parametrize("state_kind", ["real", "complex"])
def test_cached_decoding_equals_the_whole(state_kind):
    before, after = assert_cached_pieces_equal_the_whole(build_float64("hgrn", state_kind=state_kind))
    assert before == after
