"""Shared checks for the minGRU / minLSTM language models: the whole LM against minGRU-pytorch's
minLM (weights copied), parallel == sequential (outputs and gradients), cached decoding."""

import torch
from minGRU_pytorch.minLM import minLM

import bestiary


def build(name, **overrides):
    torch.manual_seed(0)
    return bestiary.build(name, tiny=True, **overrides).double()


def assert_equals_minlm(name, use_lstm):
    """minLM's blocks (conv disabled) are ours: x + mixer(RMSNorm(x)), x + FF(RMSNorm(x)), with FF =
    Linear-GELU-Linear; then a final RMSNorm and an untied head. Our RMSNorm computes in float32, so
    the tolerance is float32's."""
    model = build(name, conv=False, expansion=1.5, d_ff=64, norm_eps=1e-12).eval()
    reference = minLM(num_tokens=32, dim=16, depth=2, ff_mult=4, expansion=1.5, use_lstm=use_lstm).double()
    with torch.no_grad():
        reference.token_emb.weight.copy_(model.tok_embed.weight)
        for block, (_, norm, rnn, ff_norm, ff, _) in zip(model.blocks, reference.layers, strict=True):
            norm.weight.copy_(block.mixer_norm.weight)
            list(rnn.children())[0].weight.copy_(block.mixer.in_proj.weight)
            rnn.to_out.weight.copy_(block.mixer.out_proj.weight)
            ff_norm.weight.copy_(block.mlp_norm.weight)
            ff[0].weight.copy_(block.mlp.up.weight)
            ff[0].bias.copy_(block.mlp.up.bias)
            ff[2].weight.copy_(block.mlp.down.weight)
            ff[2].bias.copy_(block.mlp.down.bias)
        reference.norm.weight.copy_(model.norm.weight)
        reference.to_logits.weight.copy_(model.lm_head.weight)
        tokens = torch.randint(0, 32, (2, 12))
        torch.testing.assert_close(model(tokens), reference(tokens), atol=1e-5, rtol=1e-5)


def assert_parallel_equals_sequential(name):
    tokens = torch.randint(0, 32, (2, 10))
    results = []
    for mode in ("parallel", "sequential"):
        model = build(name, mode=mode)
        logits = model(tokens)
        weights = torch.randn_like(logits, generator=torch.Generator().manual_seed(3))
        (logits * weights).sum().backward()
        results.append((logits, [p.grad for p in model.parameters()]))
    (l_par, g_par), (l_seq, g_seq) = results
    torch.testing.assert_close(l_par, l_seq, atol=1e-12, rtol=1e-10)
    for a, b in zip(g_par, g_seq, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-8)


def assert_cached_decoding_equals_full(name):
    model = build(name, conv=True, kernel_size=4).eval()
    tokens = torch.randint(0, 32, (2, 10))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 10)
        ]
        size = cache.nbytes()
        model(tokens[:, :1], cache=cache)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-12, rtol=1e-10)
    assert cache.nbytes() == size  # the state does not grow with the text
