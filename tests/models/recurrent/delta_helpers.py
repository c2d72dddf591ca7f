"""Checks shared by the delta-rule mixers' tests (DeltaNet, Gated DeltaNet, DeltaProduct, KDA):
the chunkwise form equals the recurrence (outputs and parameter gradients, float64, chunk sizes
that do not divide T) and whole-sequence == pieces == token-by-token through the cache."""

import copy

import torch


def randomize(module, scale=0.3, seed=0):
    """Random weights (not the zero/one defaults of norms and gates): a wrong term cannot hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def assert_chunkwise_equals_recurrent(make_mixer, d_model, T=11, chunk_sizes=(3, 4, 16)):
    torch.manual_seed(0)
    recurrent = randomize(make_mixer("recurrent", 4)).double()
    x = torch.randn(2, T, d_model, dtype=torch.float64)
    y_ref = recurrent(x)
    grads_ref = torch.autograd.grad(
        (y_ref * torch.linspace(-1, 1, d_model, dtype=torch.float64)).sum(), list(recurrent.parameters())
    )
    for chunk_size in chunk_sizes:
        chunked = make_mixer("chunkwise", chunk_size).double()
        chunked.load_state_dict(recurrent.state_dict())
        y = chunked(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        grads = torch.autograd.grad(
            (y * torch.linspace(-1, 1, d_model, dtype=torch.float64)).sum(), list(chunked.parameters())
        )
        for g, g_ref in zip(grads, grads_ref):
            torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def assert_cache_steps_equal_full(mixer, d_model, T=10):
    mixer = randomize(copy.deepcopy(mixer)).double().eval()
    x = torch.randn(2, T, d_model, dtype=torch.float64)
    with torch.no_grad():
        full = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, :5], cache=cache), mixer(x[:, 5:7], cache=cache)]
        pieces += [mixer(x[:, t : t + 1], cache=cache) for t in range(7, T)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-10)
    assert cache.length == T
