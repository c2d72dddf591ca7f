"""KAT: GR-KAN MLPs that start as a ViT MLP, the patch embedding, configs, and a small task."""

import pytest
import torch
import torch.nn.functional as F
from ff_helpers import accuracy, fit

import bestiary
from bestiary.models.feedforward.kat import GRKANMLP


def test_kat_mlp_starts_as_a_vit_mlp():
    """GR-KAN #1 starts as the identity and #2 as GELU, so the block is Linear -> GELU -> Linear."""
    torch.manual_seed(0)
    mlp = GRKANMLP(d_model=16, d_ff=32, n_groups=4)
    x = torch.randn(2, 5, 16)
    fc1, fc2 = mlp.fc1.linear, mlp.fc2.linear
    reference = fc2(F.gelu(fc1(x)))  # the ViT MLP with the same weights
    hidden = fc1(x)
    assert hidden.abs().max() < 3  # inside the range the GELU fit was made on
    torch.testing.assert_close(mlp(x), reference, rtol=0, atol=2e-3)


def test_kat_patch_embedding_is_patchify_then_linear():
    torch.manual_seed(0)
    model = bestiary.build("kat", tiny=True)
    c = model.config
    x = torch.randn(2, c.in_channels, c.image_size, c.image_size)
    p = c.patch_size
    # cut into p x p patches by hand, row by row: (B, N, C*p*p) with (C, py, px) ordering like the conv weight
    patches = x.unfold(2, p, p).unfold(3, p, p)  # (B, C, H/p, W/p, p, p)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, -1, c.in_channels * p * p)  # (B, N, C*p*p)
    weight = model.patch_embed.proj.weight.reshape(c.d_model, -1)  # (d_model, C*p*p)
    by_hand = patches @ weight.T + model.patch_embed.proj.bias  # (B, N, d_model)
    by_conv = model.patch_embed(x)  # (B, N, d_model)
    torch.testing.assert_close(by_conv, by_hand, rtol=1e-5, atol=1e-5)


def test_kat_rejects_bad_configs():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        bestiary.build("kat", image_size=10, patch_size=4)
    with pytest.raises(ValueError, match="n_groups"):
        bestiary.build("kat", d_model=20, n_groups=8)


def test_kat_learns_to_tell_bright_from_dark_quadrants():
    torch.manual_seed(0)
    model = bestiary.build("kat", tiny=True, num_classes=2)
    x = torch.randn(64, 3, 8, 8) * 0.5
    y = torch.randint(0, 2, (64,))
    x[y == 1, :, :4, :4] += 1.0  # class 1: top-left patch is brighter — needs the patch embedding
    fit(model, x, y, steps=60, lr=3e-3)
    assert accuracy(model(x), y) > 0.95
    # the rational coefficients are trained too
    assert model.blocks[0].mlp.fc2.act.numerator.grad is not None
