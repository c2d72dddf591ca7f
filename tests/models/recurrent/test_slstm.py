"""sLSTM LM (xLSTM[0:1]): equals the reference package's xLSTMLMModel (backend="vanilla") with
copied weights, whole-sequence and step by step; cached decoding equals the full forward."""

import torch
from xlstm_helpers import copy_reference_weights, reference_lm, reference_step_logits

import bestiary


def _pair():
    theirs = reference_lm(32, 2, 2, slstm_at=(0, 1))
    ours = bestiary.build("slstm", vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64).double().eval()
    copy_reference_weights(ours, theirs)
    return ours, theirs


def test_logits_equal_the_reference_package():
    ours, theirs = _pair()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        logits = ours(tokens)
        torch.testing.assert_close(logits, theirs(tokens), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(logits, reference_step_logits(theirs, tokens), rtol=1e-10, atol=1e-10)


def test_cached_decoding_equals_the_full_forward():
    ours, _ = _pair()  # random recurrent matrices, so the recurrence matters
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = ours(tokens)
        cache = ours.init_cache(2)
        steps = [ours(tokens[:, :3], cache=cache)] + [
            ours(tokens[:, t : t + 1], cache=cache) for t in range(3, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)


def test_the_recurrent_matrices_change_the_output():
    """h_{t-1} feeds the gates: zeroing the recurrent matrices changes every logit after the first."""
    ours, _ = _pair()
    tokens = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        before = ours(tokens)
        for block in ours.blocks:
            block.mixer.recurrent.zero_()
        after = ours(tokens)
    torch.testing.assert_close(after[:, 0], before[:, 0])
    assert not torch.allclose(after[:, 1:], before[:, 1:])
