"""Checks shared by the linear-attention model tests (imported as a plain module)."""

import torch

import bestiary


def build_float64(name, **overrides):
    torch.manual_seed(0)
    return bestiary.build(name, tiny=True, **overrides).double().eval()


def assert_modes_agree(model, modes=("parallel", "chunkwise", "recurrent"), T=11, chunk_size=4):
    """Every block's mixer in every mode gives the same logits and the same parameter gradients."""
    tokens = torch.randint(0, model.config.vocab_size, (2, T), generator=torch.Generator().manual_seed(1))
    results = []
    for mode in modes:
        for block in model.blocks:
            if hasattr(block.mixer, "mode"):
                block.mixer.mode, block.mixer.chunk_size = mode, chunk_size
        model.zero_grad()
        logits = model(tokens)
        logits.pow(2).mean().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results.append((mode, logits.detach(), grads))
    _, ref_logits, ref_grads = results[0]
    for mode, logits, grads in results[1:]:
        torch.testing.assert_close(logits, ref_logits, rtol=1e-9, atol=1e-10, msg=mode)
        assert len(grads) == len(ref_grads)
        for got, want in zip(grads, ref_grads):
            torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10, msg=f"{mode} gradient")


def assert_cached_pieces_equal_the_whole(model, T=12):
    tokens = torch.randint(0, model.config.vocab_size, (2, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        pieces = [model(tokens[:, :5], cache=cache), model(tokens[:, 5:7], cache=cache)]
        size = cache.nbytes()
        pieces += [model(tokens[:, t : t + 1], cache=cache) for t in range(7, T)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-9, atol=1e-10)
    return size, cache.nbytes()
