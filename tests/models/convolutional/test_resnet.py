"""ResNet against transformers' ResNetForImageClassification (basic and bottleneck blocks) with
copied weights; the norm chosen at construction; bad input."""

import pytest
import torch
from conv_helpers import copy_in_order, randomize_batchnorm_statistics

import bestiary
from bestiary.layers.checks import ShapeError


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
    pytest.importorskip("transformers")
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    expansion = 4 if block == "bottleneck" else 1
    hf_config = ResNetConfig(
        num_channels=3,
        embedding_size=8,
        hidden_sizes=[8 * expansion, 16 * expansion],
        depths=[2, 1],
        layer_type=block,
        num_labels=5,
    )
    hf = ResNetForImageClassification(hf_config).eval()
    ours = bestiary.build("resnet", block=block, depths=(2, 1), d_model=8, num_classes=5).eval()
    randomize_batchnorm_statistics(hf)
    copy_in_order(ours, _hf_resnet_ordered(hf))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-5)


def test_resnet_norm_is_chosen_at_construction():
    model = bestiary.build("resnet", tiny=True, norm="group", norm_groups=4)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm))]
    assert norms and all(type(m) is torch.nn.GroupNorm and m.num_groups == 4 for m in norms)
    with pytest.raises(ValueError, match="norm=.* must be one of"):
        bestiary.build("resnet", tiny=True, norm="batchy")


def test_resnet_bad_input_names_expected_shape():
    model = bestiary.build("resnet", tiny=True)
    with pytest.raises(ShapeError, match=r"C=3"):
        model(torch.randn(2, 1, 16, 16))
    with pytest.raises(ShapeError, match=r"expected image of shape"):
        model(torch.randn(3, 16, 16))  # forgot the batch dimension
