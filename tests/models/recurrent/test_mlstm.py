"""mLSTM LM (xLSTM[1:0]): equals the reference package's xLSTMLMModel with copied weights; its
parallel, chunkwise and recurrent modes give the same logits and gradients; cached decoding equals
the full forward."""

import torch
from xlstm_helpers import copy_reference_weights, reference_lm, reference_step_logits

import bestiary


def _ours(**overrides):
    config = dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, chunk_size=3) | overrides
    return bestiary.build("mlstm", **config).double().eval()


def test_logits_equal_the_reference_package():
    theirs = reference_lm(32, 2, 2, slstm_at=())
    ours = _ours()
    copy_reference_weights(ours, theirs)
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        logits = ours(tokens)
        # its recurrent step starts from m = 0, as every form here: equal to rounding
        torch.testing.assert_close(logits, reference_step_logits(theirs, tokens), rtol=1e-10, atol=1e-10)
        # its parallel forward starts the stabiliser at -inf instead: the eps=1e-6 in the denominator
        # then weighs slightly differently, a ~1e-7 difference
        torch.testing.assert_close(logits, theirs(tokens), rtol=1e-5, atol=1e-6)


def test_modes_give_the_same_logits_and_gradients():
    torch.manual_seed(0)
    models = {mode: _ours(mode=mode) for mode in ("parallel", "chunkwise", "recurrent")}
    state = models["parallel"].state_dict()
    tokens = torch.randint(0, 64, (2, 10))
    results = {}
    for mode, model in models.items():
        model.load_state_dict(state)
        logits = model(tokens)
        logits.square().mean().backward()
        results[mode] = (logits.detach(), [p.grad for p in model.parameters()])
    for mode in ("chunkwise", "recurrent"):
        torch.testing.assert_close(results[mode][0], results["parallel"][0], rtol=1e-10, atol=1e-10)
        for g, g_parallel in zip(results[mode][1], results["parallel"][1], strict=True):
            torch.testing.assert_close(g, g_parallel, rtol=1e-8, atol=1e-10)


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model, tokens = _ours(), torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-10, atol=1e-10)
