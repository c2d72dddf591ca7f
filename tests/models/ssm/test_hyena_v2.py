"""Hyena v2 (StripedHyena 2): the pattern places the three filter kinds and attention; every
Hyena layer decodes with a fixed-size cache; whole == chunked == token by token; causal."""

import torch
from ssm_helpers import assert_cache_steps_equal_full

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.hyena import ExplicitFilter, ModalFilter


def _build(**overrides):
    torch.manual_seed(0)
    return bestiary.build("hyena_v2", tiny=True, **overrides).double().eval()


def test_pattern_cycles_short_medium_long_and_attention():
    model = _build(n_layers=5)
    assert model.layer_kinds == ["se", "mr", "li", "a", "se"]
    se, mr, li = (model.blocks[i].mixer.filters[0] for i in range(3))
    assert isinstance(se, ExplicitFilter) and se.length == 3 and se.log_rate is None
    assert isinstance(mr, ExplicitFilter) and mr.length == 8 and mr.log_rate is not None
    assert isinstance(li, ModalFilter)
    assert isinstance(model.blocks[3].mixer, MultiHeadAttention)
    assert all(len(model.blocks[i].mixer.filters) == 1 for i in (0, 1, 2, 4))  # order 2 everywhere


def test_whole_equals_chunks_equals_token_steps():
    assert_cache_steps_equal_full(_build(), 64, length=13)


def test_without_attention_the_cache_does_not_grow():
    model = _build(pattern="se-mr-li", n_layers=3)
    tokens = torch.randint(0, 64, (1, 12))
    cache = model.init_cache(1)
    with torch.no_grad():
        model(tokens[:, :4], cache=cache)
        size = cache.nbytes()
        for t in range(4, 12):
            model(tokens[:, t : t + 1], cache=cache)
    assert cache.nbytes() == size


def test_future_tokens_do_not_change_past_logits():
    model = _build()
    tokens = torch.randint(0, 64, (2, 16))
    changed = tokens.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 64
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=1e-12)
    assert (a[:, 9:] - b[:, 9:]).abs().max() > 1e-6
