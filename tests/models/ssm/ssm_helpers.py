"""Shared checks for the ssm family's language models: whole == chunked == token by token through
the cache, and two modes giving the same logits and gradients (float64)."""

import torch


def assert_cache_steps_equal_full(model, vocab, length=11, chunks=(4, 1, 3)):
    """Feed `tokens` whole, then in chunks of the given sizes, then one token at a time."""
    torch.manual_seed(1)
    tokens = torch.randint(0, vocab, (2, length))
    with torch.no_grad():
        full = model(tokens)
        cache, pieces, start = model.init_cache(2), [], 0
        for size in chunks:
            pieces.append(model(tokens[:, start : start + size], cache=cache))
            start += size
        pieces += [model(tokens[:, t : t + 1], cache=cache) for t in range(start, length)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, atol=1e-9, rtol=1e-9)
    return cache


def assert_modes_agree(build, vocab, modes, attribute="mode"):
    """build(mode) -> model (same seed); logits and every gradient must agree across modes."""
    torch.manual_seed(2)
    tokens = torch.randint(0, vocab, (2, 9))
    results = []
    for mode in modes:
        model = build(mode)
        logits = model(tokens)
        logits.pow(2).mean().backward()
        results.append(
            (logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.grad is not None})
        )
    reference_logits, reference_grads = results[0]
    for logits, grads in results[1:]:
        torch.testing.assert_close(logits, reference_logits, atol=1e-9, rtol=1e-9)
        assert grads.keys() == reference_grads.keys()
        for name, grad in grads.items():
            torch.testing.assert_close(grad, reference_grads[name], atol=1e-9, rtol=1e-7, msg=name)
