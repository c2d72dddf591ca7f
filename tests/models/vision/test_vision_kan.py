"""Vision KAN: a ViT block whose MLP is two KAN layers, trained through its splines; bad input."""

import torch
from vision_helpers import assert_rejects

import bestiary
from bestiary.layers.kan import KANLinear


def test_vision_kan_blocks_use_kan_feed_forward():
    torch.manual_seed(0)
    model = bestiary.build("vision_kan", tiny=True).eval()
    block = model.blocks[0]
    assert [type(layer) for layer in block.mlp] == [KANLinear, KANLinear]
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        y = x + block.mixer(block.mixer_norm(x))
        expected = y + block.mlp[1](block.mlp[0](block.mlp_norm(y)))
        torch.testing.assert_close(block(x), expected)
    model.train()
    model(torch.randn(2, 3, 16, 16)).pow(2).mean().backward()
    assert block.mlp[0].spline_coef.grad.abs().sum() > 0  # the spline edge functions are trained


def test_vision_kan_bad_input():
    model = bestiary.build("vision_kan", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 8, 8): "H=16"})
