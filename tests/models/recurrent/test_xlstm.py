"""xLSTM (mixed mLSTM/sLSTM stack): equals the reference package's xLSTMLMModel with the same
`slstm_at` and copied weights; cached decoding equals the full forward; slstm_at is validated."""

import pytest
import torch
from xlstm_helpers import copy_reference_weights, reference_lm, reference_step_logits

import bestiary
from bestiary.layers.xlstm import mLSTMMixer, sLSTMMixer


def _pair(slstm_at=(1,)):
    theirs = reference_lm(32, 3, 2, slstm_at=slstm_at)
    ours = bestiary.build(
        "xlstm",
        vocab_size=64,
        d_model=32,
        n_layers=3,
        n_heads=2,
        d_ff=64,
        slstm_at=slstm_at,
        mode="chunkwise",
        chunk_size=4,
    )
    ours = ours.double().eval()
    copy_reference_weights(ours, theirs)
    return ours, theirs


def test_blocks_follow_slstm_at():
    ours, _ = _pair(slstm_at=(0, 2))
    assert [type(b.mixer) for b in ours.blocks] == [sLSTMMixer, mLSTMMixer, sLSTMMixer]
    assert ours.blocks[1].mlp is None and ours.blocks[0].mlp is not None  # pre vs post up-projection


def test_logits_equal_the_reference_package():
    ours, theirs = _pair()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        logits = ours(tokens)
        torch.testing.assert_close(logits, reference_step_logits(theirs, tokens), rtol=1e-10, atol=1e-10)
        # the reference's parallel mLSTM starts its stabiliser at -inf: eps=1e-6 weighs in differently
        torch.testing.assert_close(logits, theirs(tokens), rtol=1e-5, atol=1e-6)


def test_cached_decoding_equals_the_full_forward():
    ours, _ = _pair()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = ours(tokens)
        cache = ours.init_cache(2)
        steps = [ours(tokens[:, :5], cache=cache)] + [
            ours(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)


def test_slstm_at_beyond_the_stack_is_refused():
    with pytest.raises(bestiary.ConfigError, match="slstm_at"):
        bestiary.build("xlstm", tiny=True, slstm_at=(5,))
