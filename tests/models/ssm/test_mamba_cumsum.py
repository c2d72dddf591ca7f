"""mamba_cumsum: the same model as mamba (same weights, same logits and gradients), and the scan
that runs is the chunked cumsum form of layers.scan."""

import torch
from mamba_helpers import tokens

import bestiary
import bestiary.layers.mamba as mamba_layer

TINY = dict(vocab_size=64, d_model=16, n_layers=2, d_state=4)


def _logits_and_grads(name, x, **options):
    torch.manual_seed(0)  # same seed, same weights: the models differ only in their scan
    model = bestiary.build(name, **TINY, **options).double()
    logits = model(x)
    logits.logsumexp(-1).sum().backward()
    return logits.detach(), {n: p.grad for n, p in model.named_parameters()}


def test_equals_the_sequential_model_outputs_and_gradients():
    x = tokens(64, length=21)  # chunks of 8: 8 + 8 + 5
    ref_logits, ref_grads = _logits_and_grads("mamba", x)
    logits, grads = _logits_and_grads("mamba_cumsum", x, chunk_size=8)
    torch.testing.assert_close(logits, ref_logits)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_the_scan_that_runs_is_the_chunked_cumsum(monkeypatch):
    calls = []

    def spy(name, scan):
        def wrapped(*args, **kwargs):
            calls.append((name, kwargs.get("chunk_size")))
            return scan(*args, **kwargs)

        return wrapped

    for name in ("scan_sequential", "scan_cumsum", "scan_hillis_steele"):
        monkeypatch.setattr(mamba_layer, name, spy(name, getattr(mamba_layer, name)))
    model = bestiary.build("mamba_cumsum", **TINY, chunk_size=8).double()
    assert all(block.mixer.scan == "cumsum" for block in model.blocks)
    model(tokens(64, length=21))
    assert calls == [("scan_cumsum", 8)] * 2  # one call per layer, chunk 8 (float64: no shortening)
