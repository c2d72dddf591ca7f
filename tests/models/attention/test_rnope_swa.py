"""RNoPE-SWA: the layer pattern of published configurations, and what each kind of layer can see."""

import pytest
import torch

import bestiary
from bestiary.models.attention.rnope_swa import layer_kinds

transformers = pytest.importorskip("transformers")


def test_pattern_equals_command_a_and_llama4():
    # Command A (Cohere2): 64 layers, a full-attention layer every 4th; sliding layers carry RoPE
    cohere = transformers.Cohere2Config(num_hidden_layers=64, sliding_window=4096, sliding_window_pattern=4)
    expected = ["rope_swa" if t == "sliding_attention" else "nope_full" for t in cohere.layer_types]
    assert layer_kinds(64, 4) == expected
    # Llama 4 Scout (iRoPE): 48 layers, no_rope_layers[i] = 1 where layer i uses RoPE
    llama4 = transformers.Llama4TextConfig(num_hidden_layers=48)
    assert layer_kinds(48, 4) == ["rope_swa" if r else "nope_full" for r in llama4.no_rope_layers]


def _model():
    torch.manual_seed(0)
    return bestiary.build("rnope_swa", tiny=True).eval()  # layers: rope_swa x 3, nope_full; window 4


def test_nope_layers_have_no_positions_and_see_everything():
    nope = _model().blocks[3].mixer
    assert nope.rope is None and nope.window is None
    x = torch.randn(1, 10, 32)
    shuffled = torch.cat([x[:, torch.randperm(9)], x[:, 9:]], dim=1)  # reorder the past, keep the query
    with torch.no_grad():
        # without positions the last query sees a *set* of keys: order of the past is invisible
        torch.testing.assert_close(nope(shuffled)[:, -1], nope(x)[:, -1])
        far = x.clone()
        far[:, 0] += 1.0  # 9 positions back, beyond any window
        assert not torch.allclose(nope(far)[:, -1], nope(x)[:, -1])


def test_rope_layers_see_order_but_only_inside_their_window():
    rope = _model().blocks[0].mixer
    x = torch.randn(1, 10, 32)
    shuffled = torch.cat([x[:, [8, 7, 6, 5, 4, 3, 2, 1, 0]], x[:, 9:]], dim=1)
    far = x.clone()
    far[:, 0] += 1.0
    with torch.no_grad():
        assert not torch.allclose(rope(shuffled)[:, -1], rope(x)[:, -1])  # order matters
        torch.testing.assert_close(rope(far)[:, -1], rope(x)[:, -1])  # position 0 is outside the window of 4
