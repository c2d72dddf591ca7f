"""BitNet: BitLinear inside, full precision at the ends; ternary weights that still classify; the
forward pass sees only the ternary pattern and the scale."""

import torch
from ff_helpers import accuracy, clusters, fit
from torch import nn

import bestiary
from bestiary.layers.bitlinear import BitLinear, absmean_quantize


def test_bitnet_uses_bitlinear_inside_and_full_precision_at_the_ends():
    model = bestiary.build("bitnet", n_layers=2)
    bitlinears = [m for m in model.modules() if isinstance(m, BitLinear)]
    assert len(bitlinears) == 4
    assert type(model.embed) is nn.Linear and type(model.head) is nn.Linear


def test_bitnet_classifies_clusters_with_ternary_weights():
    torch.manual_seed(0)
    X, y = clusters()
    model = fit(bestiary.build("bitnet"), X, y, steps=100, lr=0.01)
    assert accuracy(model(X), y) > 0.9
    for m in model.modules():
        if isinstance(m, BitLinear):
            w_q, _ = m.quantized_weight()
            assert set(w_q.unique().tolist()) == {-1, 0, 1}


def test_bitnet_forward_sees_only_the_ternary_pattern_and_the_scale():
    """Replace every latent weight by sign-pattern x constant, keeping mean|W| (the scale): the output
    must not change, because the forward pass only ever saw round-clip(W / mean|W|) and mean|W|."""
    torch.manual_seed(0)
    model = bestiary.build("bitnet").eval()
    x = torch.randn(16, 2)
    before = model(x)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BitLinear):
                w_q, _ = absmean_quantize(m.weight)
                nonzero = w_q.abs().mean()  # fraction of non-zero ternary weights
                m.weight.copy_(w_q * m.weight.abs().mean() / nonzero)  # same pattern, same mean|W|
    torch.testing.assert_close(model(x), before, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # and the check can fail: a weight that crosses a rounding boundary matters
        block = model.blocks[0].up
        block.weight[0, 0] = -block.weight[0, 0] * 5
    assert not torch.allclose(model(x), before, rtol=1e-5, atol=1e-5)
