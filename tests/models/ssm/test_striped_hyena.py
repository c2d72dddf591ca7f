"""StripedHyena: attention every attn_every-th block, Hyena (modal or implicit filters) elsewhere;
whole == chunked == token by token for both filter kinds; modal Hyena blocks keep a fixed state."""

import torch
from ssm_helpers import assert_cache_steps_equal_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.hyena import HyenaOperator, ImplicitFilter, ModalFilter


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("striped_hyena", tiny=True, **overrides).double().eval()


def test_layer_pattern():
    model = _build(n_layers=6, attn_every=3)
    assert model.attention_layers == [2, 5]
    for i, block in enumerate(model.blocks):
        expected = MultiHeadAttention if i in (2, 5) else HyenaOperator
        assert isinstance(block.mixer, expected)
    assert isinstance(model.blocks[0].mixer.filters[0], ModalFilter)
    assert isinstance(_build(long_filter="implicit").blocks[0].mixer.filters[0], ImplicitFilter)


def test_whole_equals_chunks_equals_token_steps_for_both_filters():
    for long_filter in ("modal", "implicit"):
        cache = assert_cache_steps_equal_full(_build(long_filter=long_filter, n_layers=3, attn_every=2), 64)
        state = cache[0]["filter_0"]
        assert state.shape == ((2, 16, 4) if long_filter == "modal" else (2, 11, 16))
