"""Swin against transformers' SwinForImageClassification with copied weights (including windows that
need padding); the window partition and the shifted-window mask; bad input."""

import pytest
import torch
from vision_helpers import assert_rejects, assert_same_logits

import bestiary
from bestiary.layers.window_attention import shifted_window_mask, window_partition, window_reverse
from bestiary.models.vision.swin import HF_NAMES


@pytest.mark.parametrize("window", [4, 3])  # 3: the 16x16, 8x8 and 4x4 maps need padding to whole windows
def test_swin_matches_transformers(window):
    pytest.importorskip("transformers")
    from transformers import SwinConfig, SwinForImageClassification

    torch.manual_seed(0)
    hf_config = SwinConfig(
        image_size=32,
        patch_size=2,
        embed_dim=8,
        depths=[2, 2, 2],
        num_heads=[2, 4, 8],
        window_size=window,
        num_labels=5,
    )
    hf = SwinForImageClassification(hf_config).eval()
    with torch.no_grad():  # the bias tables start at zero in transformers: make them matter
        for name, p in hf.named_parameters():
            if "relative_position_bias_table" in name:
                p.normal_()
    ours = bestiary.build(
        "swin",
        image_size=32,
        patch_size=2,
        d_model=8,
        depths=(2, 2, 2),
        head_dim=4,
        window_size=window,
        num_classes=5,
    ).eval()
    theirs = {k: v for k, v in hf.state_dict().items() if "relative_position_index" not in k}
    assert_same_logits(ours, hf, HF_NAMES, torch.randn(2, 3, 32, 32), theirs=theirs)


def test_swin_bad_input():
    model = bestiary.build("swin", tiny=True)  # patch 2
    assert_rejects(model, {(1, 2, 16, 16): r"C=3", (1, 3, 15, 16): r"multiples of 2"})


def test_window_partition_round_trip_and_shift_mask():
    x = torch.randn(2, 8, 12, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    torch.testing.assert_close(windows[1].view(4, 4, 5), x[0, 0:4, 4:8])  # second window of the first row
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)
    mask = shifted_window_mask(8, 8, 4, 2)  # (4 windows, 16, 16), True: may attend
    assert mask[0].all()  # the top-left window holds one contiguous region
    # the bottom-right window mixes 4 regions of 4 tokens each: 4 * 4 * 4 allowed pairs out of 256
    assert mask[3].sum() == 64


def test_shifted_blocks_alternate_and_tokens_cross_window_borders_only_with_the_shift():
    """Every second block shifts by window // 2; one unshifted block keeps windows apart, the
    shifted one after it lets a change in one window reach the next."""
    torch.manual_seed(0)
    model = bestiary.build("swin", d_model=8, depths=(2,), head_dim=4, window_size=4, image_size=16).eval()
    first, second = model.stages[0]
    assert (first.mixer.shift, second.mixer.shift) == (0, 2)
    x = torch.randn(1, 8, 8, 8)  # (B, H, W, C): four 4x4 windows
    probe = x.clone()
    # change a token in the top-left window (by a random vector: LayerNorm would erase a constant shift)
    probe[0, 0, 0] += torch.randn(8)
    with torch.no_grad():
        changed = (first(probe) - first(x)).abs().sum(-1)[0]  # (H, W)
        assert changed[:4, :4].sum() > 0 and changed[4:, :].sum() == 0 and changed[:, 4:].sum() == 0
        changed = (second(first(probe)) - second(first(x))).abs().sum(-1)[0]
        assert changed[4:, 4:].sum() > 0
