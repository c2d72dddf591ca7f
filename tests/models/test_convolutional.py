"""Convolutional family: outputs against transformers (copied weights), shapes, bad input."""

from __future__ import annotations

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError

transformers = pytest.importorskip("transformers")


def copy_in_order(ours: torch.nn.Module, theirs: list[tuple[str, torch.Tensor]]) -> None:
    """Copy a reference state dict into ours tensor by tensor, in order, checking every shape.

    The order of `theirs` is arranged by the caller to follow our module order; a mismatch in
    any shape (a missing bias, a wrong width) fails loudly.
    """
    mine = ours.state_dict()
    assert len(mine) == len(theirs), f"{len(mine)} tensors in ours, {len(theirs)} in the reference"
    new = {}
    for (name, tensor), (their_name, their_tensor) in zip(mine.items(), theirs):
        assert tensor.shape == their_tensor.shape, f"{name} {tuple(tensor.shape)} vs {their_name}"
        new[name] = their_tensor.clone()
    ours.load_state_dict(new)


def _block_prefix(key: str, marker: str) -> str:
    return key[: key.index(marker)] if marker in key else key


def _hf_resnet_ordered(hf_model) -> list[tuple[str, torch.Tensor]]:
    """HF registers a block's shortcut before its convs; ours after: move the shortcut last."""
    items = list(hf_model.state_dict().items())
    first_seen: dict[str, int] = {}
    for i, (key, _) in enumerate(items):
        first_seen.setdefault(_block_prefix(key, ".shortcut."), i)

    def sort_key(item_index):
        i, (key, _) = item_index
        if ".shortcut." in key:
            return (first_seen[_block_prefix(key, ".shortcut.")], 1, i)
        prefix = _block_prefix(key, ".layer.")
        return (first_seen.get(prefix, i), 0, i)

    return [item for _, item in sorted(enumerate(items), key=sort_key)]


@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_resnet_matches_transformers(block):
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    hf_config = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8 * (4 if block == "bottleneck" else 1), 16 * (4 if block == "bottleneck" else 1)],
        depths=[2, 1],
        layer_type=block,
        num_labels=5,
    )
    hf = ResNetForImageClassification(hf_config).eval()
    ours = bestiary.build("resnet", block=block, layers=(2, 1), d_model=8, num_classes=5).eval()
    # make BatchNorm running statistics non-trivial so they are checked too
    for module in hf.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
    copy_in_order(ours, _hf_resnet_ordered(hf))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-5)


def test_resnet_bad_input_names_expected_shape():
    model = bestiary.build("resnet", tiny=True)
    with pytest.raises(ShapeError, match=r"C=3"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ShapeError, match=r"expected image of shape"):
        model(torch.randn(3, 16, 16))  # forgot the batch dimension


@pytest.mark.parametrize("name", ["densenet", "mobilenet", "efficientnet"])
def test_image_cnn_bad_channels(name):
    model = bestiary.build(name, tiny=True)
    with pytest.raises(ShapeError, match=r"C=3"):
        model(torch.randn(1, 1, 16, 16))


def test_densenet_layers_see_all_earlier_features():
    model = bestiary.build("densenet", growth_rate=4, layers=(3,), d_model=8)
    block = model.blocks[0]
    # layer l of a dense block takes d_model + l * growth_rate channels
    assert [layer.conv1.in_channels for layer in block.layers] == [8, 12, 16]
    out = block(torch.randn(1, 8, 5, 5))
    assert out.shape == (1, 8 + 3 * 4, 5, 5)


def test_inverted_residual_uses_residual_only_when_shapes_match():
    from bestiary.layers.conv_blocks import InvertedResidual

    same = InvertedResidual(8, 8, 1, 6).eval()
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(same(x), x + same.block(x))
    assert not InvertedResidual(8, 8, 2, 6).use_residual
    assert not InvertedResidual(8, 16, 1, 6).use_residual


def test_efficientnet_compound_scaling_grows_depth_and_width():
    def n_blocks(model):
        return sum(1 for m in model.features if m.__class__.__name__ == "InvertedResidual")

    b0 = bestiary.build("efficientnet_b0", num_classes=10)
    b3 = bestiary.build("efficientnet_b3", num_classes=10)
    assert n_blocks(b0) == 16  # the paper's Table 1: 1+2+2+3+3+4+1
    assert n_blocks(b3) == 26  # ceil(1.4 * n) per stage
    assert b3.head.in_features == 1536  # 4 * make_divisible(320 * 1.2)


def test_conv1d_first_conv_is_a_cross_correlation_float64():
    """The first conv of the 1-D CNN against a NumPy sliding dot product (float64)."""
    import numpy as np

    model = bestiary.build("conv1d", widths=(3,), kernel_size=3, in_channels=2).double()
    conv = model.blocks[0][0]
    x = torch.randn(1, 2, 10, dtype=torch.float64)
    w = conv.weight.detach().numpy()  # (out, in, k)
    padded = np.pad(x.numpy()[0], ((0, 0), (1, 1)))
    expected = np.array([[(w[o] * padded[:, t : t + 3]).sum() for t in range(10)] for o in range(3)])
    np.testing.assert_allclose(conv(x)[0].detach().numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spatial_dims", [1, 2])
def test_conv1d_shapes_and_bad_input(spatial_dims):
    model = bestiary.build("conv1d", tiny=True, spatial_dims=spatial_dims, in_channels=3, num_classes=4)
    x = bestiary.example_input("conv1d", 2, tiny=True, spatial_dims=spatial_dims, in_channels=3)
    assert model(x).shape == (2, 4)
    with pytest.raises(ShapeError, match="C=3"):
        model(x[:, :2])
    with pytest.raises(ShapeError, match="expected input of shape"):
        model(x[0])  # no batch dimension


def test_tcn_is_causal_and_receptive_field_is_exact():
    torch.manual_seed(0)
    model = bestiary.build(
        "tcn", in_dim=2, d_model=4, n_layers=3, kernel_size=2, use_weight_norm=False
    ).eval()
    rf = model.receptive_field  # 1 + 2 * 1 * (2^3 - 1) = 15
    assert rf == 15
    T = 40
    x = torch.randn(1, T, 2)
    with torch.no_grad():
        base = model(x)
        future = x.clone()
        future[:, 30:] += 1.0  # change the future only
        torch.testing.assert_close(model(future)[:, :30], base[:, :30], rtol=0, atol=0)
        # an input more than rf - 1 steps in the past cannot reach the output; one inside can
        for t_in, reaches in ((30 - rf, False), (30 - rf + 1, True)):
            probe = x.clone()
            probe[:, t_in] += 10.0
            changed = not torch.equal(model(probe)[:, 30], base[:, 30])
            assert changed == reaches, (t_in, changed)


def test_tcn_output_and_bad_input():
    model = bestiary.build("tcn", tiny=True)
    assert model.out_dim == 8
    assert model(torch.randn(2, 7, 4)).shape == (2, 7, 8)
    with pytest.raises(ShapeError, match="D=4"):
        model(torch.randn(2, 7, 5))


def test_mobilenet_v2_preset_matches_transformers():
    """The full MobileNetV2 (the preset) against transformers with symmetric padding, weights copied in order."""
    from transformers import MobileNetV2Config, MobileNetV2ForImageClassification

    torch.manual_seed(0)
    hf = MobileNetV2ForImageClassification(MobileNetV2Config(tf_padding=False, num_labels=10)).eval()
    for module in hf.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    ours = bestiary.build("mobilenet_v2", num_classes=10).eval()
    theirs = [(k, v) for k, v in hf.state_dict().items() if "num_batches_tracked" not in k]
    mine_names = [k for k in ours.state_dict() if "num_batches_tracked" not in k]
    mine = {k: v for k, v in ours.state_dict().items()}
    assert len(mine_names) == len(theirs)
    for name, (their_name, tensor) in zip(mine_names, theirs):
        assert mine[name].shape == tensor.shape, (name, their_name)
        mine[name] = tensor.clone()
    ours.load_state_dict(mine)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-4)


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    from bestiary.layers.drop_path import DropPath, drop_path_rates

    torch.manual_seed(0)
    layer = DropPath(0.25)
    x = torch.ones(20000, 3)
    out = layer(x)
    kept = (out[:, 0] != 0).float().mean()
    assert abs(kept.item() - 0.75) < 0.02  # whole samples dropped with probability p
    assert torch.all((out == 0) | torch.isclose(out, torch.tensor(1 / 0.75)))  # survivors rescaled by 1/(1-p)
    assert abs(out.mean().item() - 1.0) < 0.03
    layer.eval()
    assert torch.equal(layer(x), x)
    assert drop_path_rates(0.2, 3) == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError):
        DropPath(1.0)


def test_make_divisible_follows_the_mobilenet_rule():
    from bestiary.layers.conv_blocks import make_divisible

    # rounded to the nearest multiple of 8, never more than 10% below the request
    assert [make_divisible(v) for v in (32 * 0.75, 1280 * 1.4, 16 * 0.35, 10, 3)] == [24, 1792, 8, 16, 8]
