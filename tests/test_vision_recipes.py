"""bestiary.vision: image tensors, one-cycle, norm swapping vs the norms' definitions, the 1x1-only net
(space-to-depth + 1x1 conv == 2x2 stride-2 conv), and the training loop on a task it must solve."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import bestiary
from bestiary.data.augment import Augment
from bestiary.vision import (
    PointwiseConfig,
    PointwiseNet,
    accuracy_of,
    fit_classifier,
    image_batch,
    make_norm2d,
    one_cycle,
    predict_proba,
    replace_batchnorm,
)


def test_image_batch_scales_pads_and_validates() -> None:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5)
    x, y = image_batch(imgs, labels)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    np.testing.assert_allclose(x[:, 0].numpy(), imgs / 255.0, rtol=1e-6)
    padded = image_batch(imgs, pad_to=32)
    np.testing.assert_allclose(
        padded[:, 0].numpy(), np.pad(imgs / 255.0, ((0, 0), (2, 2), (2, 2))), rtol=1e-6
    )
    with pytest.raises(TypeError, match="uint8"):
        image_batch(imgs.astype(np.float32))
    with pytest.raises(ValueError, match="pad_to"):
        image_batch(imgs, pad_to=20)
    with pytest.raises(ValueError, match="labels"):
        image_batch(imgs, labels[:3])


def test_one_cycle_shape() -> None:
    total = 1000
    m = np.array([one_cycle(s, total, pct_start=0.3, div=25, final_div=1e3) for s in range(total + 1)])
    peak = int(total * 0.3)
    assert m[0] == pytest.approx(1 / 25)
    assert m[peak] == pytest.approx(1.0)
    assert m[-1] == pytest.approx(1 / 25e3)
    assert np.all(np.diff(m[: peak + 1]) > 0) and np.all(np.diff(m[peak:]) < 0)
    with pytest.raises(ValueError, match="pct_start"):
        one_cycle(0, 10, pct_start=1.0)


def _reference_group_norm(x: np.ndarray, groups: int, eps: float = 1e-5) -> np.ndarray:
    B, C, H, W = x.shape
    g = x.reshape(B, groups, C // groups * H * W)
    mean, var = g.mean(-1, keepdims=True), g.var(-1, keepdims=True)
    return ((g - mean) / np.sqrt(var + eps)).reshape(B, C, H, W)


@pytest.mark.parametrize(
    ("kind", "groups_of"),
    [("layer", lambda C: 1), ("instance", lambda C: C), ("group", lambda C: 4)],
)
def test_norms_match_their_definition(kind: str, groups_of) -> None:
    x = torch.randn(3, 8, 5, 6, dtype=torch.float64)
    norm = make_norm2d(kind, 8, groups=4).double()
    expected = _reference_group_norm(x.numpy(), groups_of(8))
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-10)
    if kind == "layer":  # LayerNorm over (C, H, W), as torch defines it
        np.testing.assert_allclose(norm(x).detach().numpy(), F.layer_norm(x, (8, 5, 6)).numpy(), atol=1e-10)
    if kind == "instance":
        np.testing.assert_allclose(norm(x).detach().numpy(), F.instance_norm(x).numpy(), atol=1e-10)


def test_group_norm_groups_divide_channels_and_bad_kind() -> None:
    assert make_norm2d("group", 12, groups=8).num_groups == 6
    assert make_norm2d("group", 4, groups=8).num_groups == 4
    with pytest.raises(ValueError, match="kind must be one of"):
        make_norm2d("batchy", 4)


@pytest.mark.parametrize("kind", ["layer", "instance", "group", "none"])
def test_replace_batchnorm_in_a_resnet(kind: str) -> None:
    model = bestiary.build("resnet", in_channels=1, stem="cifar", depths=(1, 1), d_model=8)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert replace_batchnorm(model, kind, groups=4) == n_bn > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    expected = nn.Identity if kind == "none" else nn.GroupNorm
    assert sum(isinstance(m, expected) for m in model.modules()) >= n_bn
    out = model(torch.randn(2, 1, 12, 12))
    out.sum().backward()
    assert out.shape == (2, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize("kind", ["layer", "instance", "group", "none"])
def test_resnet_norm_option_equals_replacing_batchnorm(kind: str) -> None:
    """build("resnet", norm=kind) is the BatchNorm network with every norm swapped: same modules, same output."""
    opts = dict(in_channels=1, stem="cifar", depths=(1, 1), d_model=8)
    torch.manual_seed(0)
    built = bestiary.build("resnet", **opts, norm=kind, norm_groups=4)
    torch.manual_seed(0)
    swapped = bestiary.build("resnet", **opts)
    replace_batchnorm(swapped, kind, groups=4)
    assert [type(m) for m in built.modules()] == [type(m) for m in swapped.modules()]
    swapped.load_state_dict(built.state_dict())
    x = torch.randn(2, 1, 12, 12)
    torch.testing.assert_close(built(x), swapped(x))
    with pytest.raises(ValueError, match="norm=.* must be one of"):
        bestiary.build("resnet", **opts, norm="batchy")


def test_pointwise_net_uses_only_1x1_convs() -> None:
    net = PointwiseNet(PointwiseConfig(widths=(4, 8), depth=1, image_size=8))
    kinds = {type(m) for m in net.modules() if not list(m.children())}
    assert kinds <= {nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.PixelUnshuffle}
    assert all(m.kernel_size == (1, 1) for m in net.modules() if isinstance(m, nn.Conv2d))
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ValueError, match="divisible"):
        PointwiseNet(PointwiseConfig(widths=(4, 8, 8), image_size=28))
    with pytest.raises(ValueError, match="H=8"):
        net(torch.randn(2, 1, 16, 16))


def test_space_to_depth_then_1x1_equals_a_2x2_stride_2_conv() -> None:
    # The claim the P08 notebook rests on, checked against F.conv2d: PixelUnshuffle puts input channel
    # c, offset (i, j) at channel c*4 + i*2 + j, so the 1x1 weight reshaped to (O, C, 2, 2) is the 2x2 kernel.
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    w = torch.randn(5, 12, 1, 1, dtype=torch.float64)
    ours = F.conv2d(F.pixel_unshuffle(x, 2), w)
    reference = F.conv2d(x, w.reshape(5, 3, 2, 2), stride=2)
    torch.testing.assert_close(ours, reference)


def _toy_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class = which quadrant holds a bright 3x3 blob (plus noise): learnable in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 4, (n,), generator=g)
    x = torch.rand(n, 1, 12, 12, generator=g) * 0.3
    for k, (r, c) in enumerate([(2, 2), (2, 7), (7, 2), (7, 7)]):
        x[y == k, :, r : r + 3, c : c + 3] = 1.0
    return x, y


def _toy_model() -> nn.Module:
    return bestiary.build("resnet", in_channels=1, num_classes=4, stem="cifar", depths=(1, 1), d_model=8)


def test_fit_classifier_learns_and_stops_at_target() -> None:
    x, y = _toy_images(512, 0)
    xt, yt = _toy_images(256, 1)
    torch.manual_seed(0)
    model = _toy_model()
    seen: list[dict] = []
    assert accuracy_of(model, xt, yt) < 0.6  # untrained: near chance (0.25)
    result = fit_classifier(
        model, x, y, epochs=4, batch_size=32, lr=0.05, optimizer="sgd", augment=Augment(1, 0.0, 0),
        label_smoothing=0.1, eval_data=(xt, yt), eval_every=8, target_acc=0.95, progress=False,
        on_eval=seen.append,
    )  # fmt: skip
    assert seen == result.evals and all(row["step"] % 8 == 0 for row in seen)
    assert result.stopped == "target" and result.time_to_target is not None
    assert result.final_acc >= 0.95 and result.steps < 4 * (512 // 32)
    assert accuracy_of(model, xt, yt) == pytest.approx(result.final_acc)
    probs = predict_proba(model, xt)
    torch.testing.assert_close(probs.sum(-1), torch.ones(len(xt)))


def test_fit_classifier_is_deterministic_and_respects_max_seconds() -> None:
    x, y = _toy_images(128, 0)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        r = fit_classifier(_toy_model(), x, y, epochs=1, batch_size=32, lr=0.01, augment=Augment(1, 0.5, 2),
                           mean=0.3, std=0.3, log_every=1, progress=False)  # fmt: skip
        runs.append([row["loss"] for row in r.history])
    assert runs[0] == runs[1] and len(runs[0]) == 4
    r = fit_classifier(
        _toy_model(), x, y, epochs=5, batch_size=32, max_seconds=0.0, eval_data=(x, y), progress=False
    )
    assert r.stopped == "max_seconds" and r.steps == 1 and r.final_acc is not None


def test_fit_classifier_rejects_bad_arguments() -> None:
    x, y = _toy_images(64, 0)
    with pytest.raises(ValueError, match="optimizer"):
        fit_classifier(_toy_model(), x, y, optimizer="lion", progress=False)
    with pytest.raises(ValueError, match="eval_data"):
        fit_classifier(_toy_model(), x, y, target_acc=0.9, progress=False)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        fit_classifier(_toy_model(), x[:, 0], y, progress=False)


def test_budget_seconds_fits_the_schedule_to_the_time_budget() -> None:
    """With a time budget the one-cycle LR rises then anneals over *time*, ending at the budget."""
    x, y = _toy_images(128, 0)
    result = fit_classifier(
        _toy_model(), x, y, batch_size=16, lr=0.1, optimizer="sgd", budget_seconds=0.8, log_every=1,
        progress=False,
    )  # fmt: skip
    lrs = [row["lr"] for row in result.history]
    assert result.stopped == "max_seconds" and 0.8 <= result.history[-1]["time_s"] < 1.6
    assert lrs[0] < 0.1 / 10 and max(lrs) > 0.08  # warm-up from lr/25 to near the peak ...
    assert lrs[-1] < 0.1 * 0.05  # ... and annealed close to zero by the end of the budget
    peak = lrs.index(max(lrs))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1 :], strict=False))  # monotone anneal
    with pytest.raises(ValueError, match="budget_seconds"):
        fit_classifier(_toy_model(), x, y, budget_seconds=0, progress=False)


def test_fit_classifier_with_muon_learns() -> None:
    """optimizer="muon": Muon (peak muon_lr) on the conv kernels, AdamW (peak lr) on the rest."""
    x, y = _toy_images(512, 0)
    xt, yt = _toy_images(256, 1)
    torch.manual_seed(0)
    model = _toy_model()
    result = fit_classifier(
        model, x, y, epochs=4, batch_size=32, lr=5e-3, optimizer="muon", muon_lr=0.05,
        eval_data=(xt, yt), eval_every=8, target_acc=0.95, progress=False,
    )  # fmt: skip
    assert result.stopped == "target" and result.final_acc >= 0.95
    assert result.steps < 4 * (512 // 32)


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_micro_batches_give_the_whole_batch_update_unless_the_net_uses_batchnorm(norm: str) -> None:
    """Gradient accumulation over micro-batches of 4 == one batch of 16 for a batch-independent net
    (GroupNorm); with BatchNorm the micro-batches' own statistics make the updates differ."""
    x, y = _toy_images(64, 0)
    weights = []
    for micro in (None, 4):
        torch.manual_seed(0)
        model = bestiary.build(
            "resnet", in_channels=1, num_classes=4, stem="cifar", depths=(1, 1), d_model=8, norm=norm
        )
        fit_classifier(model, x, y, epochs=0.5, batch_size=16, micro_batch_size=micro, lr=0.05,
                       optimizer="sgd", progress=False)  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    if norm == "group":
        torch.testing.assert_close(weights[0], weights[1], atol=1e-5, rtol=1e-4)
    else:
        assert (weights[0] - weights[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="micro_batch_size"):
        fit_classifier(model, x, y, batch_size=16, micro_batch_size=32, progress=False)


def test_micro_batching_leaves_the_augmentation_draws_unchanged() -> None:
    """Each step's whole batch is augmented once, then cut into micro-batches: with a batch-independent net
    (GroupNorm) and random crops + flips, micro-batches of 4 still give the batch-of-16 update. (Augmenting
    each micro-batch separately would draw different crops and fail this.)"""
    x, y = _toy_images(64, 0)
    weights = []
    for micro in (None, 4):
        torch.manual_seed(0)
        model = bestiary.build(
            "resnet", in_channels=1, num_classes=4, stem="cifar", depths=(1, 1), d_model=8, norm="group"
        )
        fit_classifier(model, x, y, epochs=0.5, batch_size=16, micro_batch_size=micro, lr=0.05, optimizer="sgd",
                       augment=Augment(2, 0.5, 4, seed=1), progress=False)  # fmt: skip
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="divide"):
        fit_classifier(model, x, y, batch_size=16, micro_batch_size=6, progress=False)
