"""Vision family: outputs against transformers with copied weights, bad input, model-specific checks."""

from __future__ import annotations

import re

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError

transformers = pytest.importorskip("transformers")


def copy_renamed(
    ours: torch.nn.Module, theirs: dict[str, torch.Tensor], rules: list[tuple[str, str]]
) -> None:
    """Load `theirs` into `ours`, renaming each of our names by the regex `rules` (applied in
    order); every reference tensor must be used."""
    mine = ours.state_dict()
    new, used = {}, set()
    for name, tensor in mine.items():
        their_name = _sub(name, rules)
        assert their_name in theirs, f"{name} -> {their_name} is not in the reference"
        assert theirs[their_name].shape == tensor.shape, f"{name} vs {their_name}"
        new[name] = theirs[their_name].clone()
        used.add(their_name)
    ours.load_state_dict(new)
    unused = {k for k in theirs if k not in used and "num_batches_tracked" not in k}
    assert not unused, f"reference tensors not copied: {sorted(unused)[:5]}"


def _sub(name: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def assert_same_logits(ours, hf, rules, x, theirs=None) -> None:
    """Copy the reference weights (`theirs`, default all of `hf`'s) into `ours`, then both models
    must give the same logits on `x`."""
    copy_renamed(ours, hf.state_dict() if theirs is None else theirs, rules)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-5)


def assert_rejects(model, cases: dict[tuple[int, ...], str]) -> None:
    """For each `shape: pattern`, a random input of that shape raises a ShapeError matching pattern."""
    for shape, pattern in cases.items():
        with pytest.raises(ShapeError, match=pattern):
            model(torch.randn(*shape))


def rounded_millions(preset: str) -> float:
    """A preset's parameter count in millions, rounded to 0.1 as model cards publish it (no weights allocated)."""
    with torch.device("meta"):
        model = bestiary.build(preset)
    return round(bestiary.count_params(model) / 1e6, 1)


VIT_RULES = [  # transformers 5 names
    (r"^cls_token$", "vit.embeddings.cls_token"),
    (r"^pos_embed$", "vit.embeddings.position_embeddings"),
    (r"^patch_embed\.proj", "vit.embeddings.patch_embeddings.projection"),
    (r"^blocks\.(\d+)\.norm1", r"vit.layers.\1.layernorm_before"),
    (r"^blocks\.(\d+)\.norm2", r"vit.layers.\1.layernorm_after"),
    (r"^blocks\.(\d+)\.attn\.out_proj", r"vit.layers.\1.attention.o_proj"),
    (r"^blocks\.(\d+)\.attn\.", r"vit.layers.\1.attention."),
    (r"^blocks\.(\d+)\.mlp\.up", r"vit.layers.\1.mlp.fc1"),
    (r"^blocks\.(\d+)\.mlp\.down", r"vit.layers.\1.mlp.fc2"),
    (r"^norm\.", "vit.layernorm."),
    (r"^head\.", "classifier."),
]


def test_vit_matches_transformers():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    hf_config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        image_size=16,
        patch_size=4,
        num_channels=3,
        num_labels=7,
        layer_norm_eps=1e-6,
        qkv_bias=True,
    )
    hf = ViTForImageClassification(hf_config).eval()
    ours = bestiary.build(
        "vit", image_size=16, patch_size=4, d_model=32, n_layers=2, n_heads=4, d_ff=64, num_classes=7
    ).eval()
    assert_same_logits(ours, hf, VIT_RULES, torch.randn(2, 3, 16, 16))


def test_vit_bad_input():
    model = bestiary.build("vit", tiny=True)  # image 16, patch 4
    # learned position embeddings fix the size
    assert_rejects(model, {(1, 1, 16, 16): r"C=3", (1, 3, 20, 20): r"H=16"})
    with pytest.raises(ValueError, match="multiple of patch_size"):
        bestiary.build("vit", image_size=18, patch_size=4)


CONVNEXT_RULES = [
    (r"^stem\.0\.", "convnext.embeddings.patch_embeddings."),
    (r"^stem\.1\.", "convnext.embeddings.layernorm."),
    (r"^downsample\.(\d+)\.", r"convnext.encoder.stages.\1.downsampling_layer."),
    (r"^stages\.(\d+)\.(\d+)\.gamma", r"convnext.encoder.stages.\1.layers.\2.layer_scale_parameter"),
    (r"^stages\.(\d+)\.(\d+)\.norm\.", r"convnext.encoder.stages.\1.layers.\2.layernorm."),
    (r"^stages\.(\d+)\.(\d+)\.", r"convnext.encoder.stages.\1.layers.\2."),
    (r"^norm\.", "convnext.layernorm."),
    (r"^head\.", "classifier."),
]


def test_convnext_matches_transformers():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    hf_config = ConvNextConfig(
        hidden_sizes=[8, 16, 24],
        depths=[1, 2, 1],
        num_stages=3,
        num_labels=5,
        layer_scale_init_value=0.5,  # big enough that every block changes the output
    )
    hf = ConvNextForImageClassification(hf_config).eval()
    ours = bestiary.build("convnext", layers=(1, 2, 1), widths=(8, 16, 24), num_classes=5).eval()
    assert_same_logits(ours, hf, CONVNEXT_RULES, torch.randn(2, 3, 32, 32))


def test_convnext_bad_input():
    model = bestiary.build("convnext", tiny=True)  # two stages: downsampling factor 8
    assert_rejects(model, {(1, 4, 16, 16): r"C=3", (1, 3, 12, 12): r"multiples of 8"})


SWIN_RULES = [
    (r"^patch_embed\.proj\.", "swin.embeddings.patch_embeddings.projection."),
    (r"^patch_embed\.norm\.", "swin.embeddings.norm."),
    (r"^stages\.(\d+)\.(\d+)\.norm1\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_before."),
    (r"^stages\.(\d+)\.(\d+)\.norm2\.", r"swin.encoder.layers.\1.blocks.\2.layernorm_after."),
    (
        r"^stages\.(\d+)\.(\d+)\.attn\.relative",
        r"swin.encoder.layers.\1.blocks.\2.attention.relative_position_bias.relative",
    ),
    (r"^stages\.(\d+)\.(\d+)\.attn\.out_proj", r"swin.encoder.layers.\1.blocks.\2.attention.o_proj"),
    (r"^stages\.(\d+)\.(\d+)\.attn\.", r"swin.encoder.layers.\1.blocks.\2.attention."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.up\.", r"swin.encoder.layers.\1.blocks.\2.mlp.fc1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.down\.", r"swin.encoder.layers.\1.blocks.\2.mlp.fc2."),
    (r"^merges\.(\d+)\.", r"swin.encoder.layers.\1.downsample."),
    (r"^norm\.", "swin.layernorm."),
    (r"^head\.", "classifier."),
]


@pytest.mark.parametrize("window", [4, 3])  # 3: the 16x16, 8x8 and 4x4 maps need padding to whole windows
def test_swin_matches_transformers(window):
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
        layers=(2, 2, 2),
        head_dim=4,
        window_size=window,
        num_classes=5,
    ).eval()
    theirs = {k: v for k, v in hf.state_dict().items() if "relative_position_index" not in k}
    assert_same_logits(ours, hf, SWIN_RULES, torch.randn(2, 3, 32, 32), theirs=theirs)


def test_swin_bad_input():
    model = bestiary.build("swin", tiny=True)  # patch 2
    assert_rejects(model, {(1, 2, 16, 16): r"C=3", (1, 3, 15, 16): r"multiples of 2"})


def test_mlp_mixer_matches_einsum_reference():
    """An independent functional Mixer (einsum along explicit axes) with the model's own weights."""
    F = torch.nn.functional
    model = bestiary.build("mlp_mixer", tiny=True).eval()
    x = torch.randn(2, 3, 16, 16)
    p = dict(model.named_parameters())
    # patches by hand: (B, C, 4, 4, 4, 4) -> (B, N=16, C*4*4), projected by the conv weight as a matrix
    patches = x.unfold(2, 4, 4).unfold(3, 4, 4)  # (B, C, 4, 4, ph, pw)
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(2, 16, 3 * 16)
    h = patches @ p["patch_embed.proj.weight"].reshape(16, -1).T + p["patch_embed.proj.bias"]  # (B, N, D)
    for i in range(2):
        b = f"blocks.{i}."
        y = F.layer_norm(h, (16,), p[b + "norm1.weight"], p[b + "norm1.bias"], eps=1e-6)
        hidden = F.gelu(
            torch.einsum("bnd,kn->bkd", y, p[b + "token_mlp.up.weight"]) + p[b + "token_mlp.up.bias"][:, None]
        )
        h = (
            h
            + torch.einsum("bkd,nk->bnd", hidden, p[b + "token_mlp.down.weight"])
            + p[b + "token_mlp.down.bias"][:, None]
        )
        y = F.layer_norm(h, (16,), p[b + "norm2.weight"], p[b + "norm2.bias"], eps=1e-6)
        hidden = F.gelu(
            torch.einsum("bnd,kd->bnk", y, p[b + "channel_mlp.up.weight"]) + p[b + "channel_mlp.up.bias"]
        )
        h = (
            h
            + torch.einsum("bnk,dk->bnd", hidden, p[b + "channel_mlp.down.weight"])
            + p[b + "channel_mlp.down.bias"]
        )
    h = F.layer_norm(h, (16,), p["norm.weight"], p["norm.bias"], eps=1e-6).mean(1)
    expected = h @ p["head.weight"].T + p["head.bias"]
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected, rtol=1e-4, atol=1e-5)


def test_mlp_mixer_bad_input():
    model = bestiary.build("mlp_mixer", tiny=True)
    assert_rejects(model, {(1, 3, 20, 20): r"H=16"})  # the token MLP fixes the number of patches


POOLFORMER_RULES = [
    (r"^downsample\.(\d+)\.", r"poolformer.encoder.patch_embeddings.\1.projection."),
    (r"^stages\.(\d+)\.(\d+)\.layer_scale(\d)\.scale", r"poolformer.encoder.block.\1.\2.layer_scale_\3"),
    (r"^stages\.(\d+)\.(\d+)\.norm1\.", r"poolformer.encoder.block.\1.\2.before_norm."),
    (r"^stages\.(\d+)\.(\d+)\.norm2\.", r"poolformer.encoder.block.\1.\2.after_norm."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.0\.", r"poolformer.encoder.block.\1.\2.output.conv1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.3\.", r"poolformer.encoder.block.\1.\2.output.conv2."),
    (r"^norm\.", "norm."),
    (r"^head\.", "classifier."),
]


def test_poolformer_matches_transformers():
    from transformers import PoolFormerConfig, PoolFormerForImageClassification

    torch.manual_seed(0)
    hf_config = PoolFormerConfig(
        depths=[1, 2],
        hidden_sizes=[8, 16],
        num_encoder_blocks=2,
        patch_sizes=[7, 3],
        strides=[4, 2],
        padding=[2, 1],
        num_labels=5,
        layer_scale_init_value=0.5,
    )
    hf = PoolFormerForImageClassification(hf_config).eval()
    ours = bestiary.build("poolformer", layers=(1, 2), widths=(8, 16), num_classes=5).eval()
    assert_same_logits(ours, hf, POOLFORMER_RULES, torch.randn(2, 3, 32, 32))


DEIT_RULES = [
    (r"^dist_token$", "deit.embeddings.distillation_token"),
    (r"^head_dist\.", "distillation_classifier."),
    (r"^head\.", "cls_classifier."),
] + [(p, r.replace("vit.", "deit.")) for p, r in VIT_RULES if "head" not in p]


def test_deit_matches_transformers_with_teacher_head():
    from transformers import DeiTConfig, DeiTForImageClassificationWithTeacher

    torch.manual_seed(0)
    hf_config = DeiTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        image_size=16,
        patch_size=4,
        num_labels=3,
        layer_norm_eps=1e-6,
    )
    hf = DeiTForImageClassificationWithTeacher(hf_config).eval()
    ours = bestiary.build("deit", tiny=True, num_classes=3).eval()
    copy_renamed(ours, hf.state_dict(), DEIT_RULES)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = hf(x)
        cls_logits, dist_logits = ours.forward_heads(x)
        torch.testing.assert_close(cls_logits, expected.cls_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(dist_logits, expected.distillation_logits, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours(x), expected.logits, rtol=1e-4, atol=1e-5)


def test_deit_distillation_loss():
    from bestiary.models.vision.deit import distillation_loss

    cls_logits, dist_logits = torch.randn(4, 5), torch.randn(4, 5)
    labels, teacher = torch.randint(0, 5, (4,)), torch.randn(4, 5)
    F = torch.nn.functional
    hard = distillation_loss(cls_logits, dist_logits, labels, teacher, "hard", alpha=0.5)
    expected = 0.5 * F.cross_entropy(cls_logits, labels) + 0.5 * F.cross_entropy(
        dist_logits, teacher.argmax(-1)
    )
    torch.testing.assert_close(hard, expected)
    # soft with a teacher equal to the student's distillation head: the KL term vanishes
    soft = distillation_loss(cls_logits, dist_logits, labels, dist_logits, "soft", alpha=0.5, tau=3.0)
    torch.testing.assert_close(soft, 0.5 * F.cross_entropy(cls_logits, labels))


def test_unet_outputs_per_pixel_logits_and_skips_matter():
    model = bestiary.build("unet", tiny=True, num_classes=3).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 3, 16, 16)
        # a local change of the input changes the output mostly nearby (the skip at full resolution)
        probe = x.clone()
        probe[:, :, 0, 0] += 5.0
        diff = (model(probe) - out).abs().sum(dim=(0, 1))  # (H, W)
    assert diff[0, 0] > 0 and diff[:2, :2].sum() > diff[-4:, -4:].sum()


def test_unet_bad_input():
    model = bestiary.build("unet", tiny=True)  # 2 downsamplings: multiples of 4
    assert_rejects(model, {(1, 3, 18, 18): "multiples of 4", (1, 1, 16, 16): "C=3"})


@pytest.mark.parametrize(
    "preset, millions",
    [("caformer_s18", 26.3), ("caformer_s36", 39.3), ("caformer_m36", 56.2), ("caformer_b36", 98.8)],
)
def test_caformer_presets_match_published_rounded_counts(preset, millions):
    """Only rounded counts are published (timm model cards: 26.3M, 39.3M, 56.2M, 98.8M)."""
    assert rounded_millions(preset) == millions


@pytest.mark.parametrize(
    "mixer, spreads", [("identity", False), ("pooling", True), ("sepconv", True), ("attention", True)]
)
def test_metaformer_mixers_mix_tokens_only_when_they_should(mixer, spreads):
    from bestiary.models.vision.metaformer import make_mixer

    torch.manual_seed(0)
    module = make_mixer(mixer, 8, head_dim=4).eval()
    x = torch.randn(1, 5, 5, 8)  # (B, H, W, C)
    probe = x.clone()
    probe[0, 0, 0] += 1.0  # change one token in a corner
    with torch.no_grad():
        changed = (module(probe) - module(x)).abs().sum(-1)[0]  # (H, W)
    others = changed.clone()
    others[0, 0] = 0
    assert (others.max() > 1e-6) == spreads
    if mixer == "pooling":  # a 3x3 neighbourhood: the far corner is untouched
        assert changed[4, 4] == 0 and changed[1, 1] > 0


def test_metaformer_bad_input():
    for name in ("metaformer", "caformer", "poolformer"):
        model = bestiary.build(name, tiny=True)
        assert_rejects(model, {(1, 2, 32, 32): "C=3"})


FOCALNET_RULES = [
    (r"^stem\.", "focalnet.embeddings.patch_embeddings.projection."),
    (r"^stem_norm\.", "focalnet.embeddings.norm."),
    (
        r"^stages\.(\d+)\.(\d+)\.modulation\.proj_in\.",
        r"focalnet.encoder.stages.\1.layers.\2.modulation.projection_in.",
    ),
    (
        r"^stages\.(\d+)\.(\d+)\.modulation\.proj_context\.",
        r"focalnet.encoder.stages.\1.layers.\2.modulation.projection_context.",
    ),
    (
        r"^stages\.(\d+)\.(\d+)\.modulation\.proj_out\.",
        r"focalnet.encoder.stages.\1.layers.\2.modulation.projection_out.",
    ),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.up\.", r"focalnet.encoder.stages.\1.layers.\2.mlp.fc1."),
    (r"^stages\.(\d+)\.(\d+)\.mlp\.down\.", r"focalnet.encoder.stages.\1.layers.\2.mlp.fc2."),
    (r"^stages\.(\d+)\.(\d+)\.", r"focalnet.encoder.stages.\1.layers.\2."),
    (r"^downsample\.(\d+)\.conv\.", r"focalnet.encoder.stages.\1.downsample.projection."),
    (r"^downsample\.(\d+)\.norm\.", r"focalnet.encoder.stages.\1.downsample.norm."),
    (r"^norm\.", "focalnet.layernorm."),
    (r"^head\.", "classifier."),
]


def test_focalnet_matches_transformers():
    from transformers import FocalNetConfig, FocalNetForImageClassification

    torch.manual_seed(0)
    hf_config = FocalNetConfig(
        embed_dim=8,
        depths=[1, 2, 1],
        focal_levels=[3, 3, 3],
        focal_windows=[3, 3, 3],
        num_labels=5,
        image_size=32,
        layer_norm_eps=1e-5,
    )
    hf = FocalNetForImageClassification(hf_config).eval()
    ours = bestiary.build("focalnet", d_model=8, layers=(1, 2, 1), focal_levels=3, num_classes=5).eval()
    assert_same_logits(ours, hf, FOCALNET_RULES, torch.randn(2, 3, 32, 32))


def test_focalnet_bad_input():
    model = bestiary.build("focalnet", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 18, 16): "multiples of 4"})


@pytest.mark.parametrize(
    "preset, millions",
    [
        ("efficientvit_b0", 3.4),
        ("efficientvit_b1", 9.1),
        ("efficientvit_b2", 24.3),
        ("efficientvit_b3", 48.6),
    ],
)
def test_efficient_vit_presets_match_published_rounded_counts(preset, millions):
    assert rounded_millions(preset) == millions


def test_efficient_vit_linear_attention_equals_quadratic_form():
    """The O(N) ReLU linear attention equals the explicit O(N^2) normalised ReLU-similarity average."""
    from bestiary.models.vision.efficient_vit import LiteMLA

    torch.manual_seed(0)
    module = LiteMLA(8, head_dim=4, scales=()).double()  # no multi-scale branch: plain q, k, v
    x = torch.randn(1, 8, 3, 3, dtype=torch.float64)
    qkv = module.qkv(x).reshape(1, 2, 12, 9).transpose(-1, -2)  # (B, heads, N, 3d)
    q, k, v = (t.relu() if i < 2 else t for i, t in enumerate(qkv.chunk(3, dim=-1)))
    sim = q @ k.transpose(-1, -2)  # (B, heads, N, N), explicit pairwise similarities
    out = (sim @ v) / (sim.sum(-1, keepdim=True) + module.eps)  # (B, heads, N, d)
    expected = x + module.proj(out.transpose(-1, -2).reshape(1, 8, 3, 3))
    torch.testing.assert_close(module(x), expected)


def test_efficient_vit_bad_input():
    model = bestiary.build("efficient_vit", tiny=True)
    assert_rejects(model, {(1, 4, 32, 32): "C=3"})


def assert_dino_tokens_match(out, ref: torch.Tensor, n_registers: int) -> None:
    """Our DinoOutput against a reference last_hidden_state laid out [CLS], registers, patches."""
    torch.testing.assert_close(out.cls_token, ref[:, 0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.register_tokens, ref[:, 1 : 1 + n_registers], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.patch_tokens, ref[:, 1 + n_registers :], rtol=1e-4, atol=1e-5)


DINO_RULES = [
    (r"^(cls_token|mask_token|register_tokens)$", r"embeddings.\1"),
    (r"^pos_embed$", "embeddings.position_embeddings"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings.projection."),
    (r"^blocks\.(\d+)\.attn\.out_proj\.", r"encoder.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.attn\.", r"encoder.layer.\1.attention."),
    (r"^blocks\.(\d+)\.ls(\d)\.gamma", r"encoder.layer.\1.layer_scale\2.lambda1"),
    (r"^blocks\.(\d+)\.mlp\.up\.", r"encoder.layer.\1.mlp.fc1."),
    (r"^blocks\.(\d+)\.mlp\.down\.", r"encoder.layer.\1.mlp.fc2."),
    (r"^blocks\.(\d+)\.", r"encoder.layer.\1."),
    (r"^norm\.", "layernorm."),
]


def test_dino_v2_backbone_matches_transformers_with_registers():
    from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    torch.manual_seed(0)
    hf_config = Dinov2WithRegistersConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=16,
        patch_size=4,
        num_register_tokens=2,
        layerscale_value=0.5,
    )
    hf = Dinov2WithRegistersModel(hf_config).eval()
    ours = bestiary.build("dino_v2", tiny=True, head_prototypes=0, d_ff=64).eval()
    copy_renamed(ours, hf.state_dict(), DINO_RULES)
    x = torch.randn(2, 3, 16, 16)
    mask = torch.rand(2, 16) < 0.3
    with torch.no_grad():
        out = ours(x, mask=mask)
        ref = hf(x, bool_masked_pos=mask).last_hidden_state  # [CLS], registers, patches
    assert_dino_tokens_match(out, ref, n_registers=2)
    assert out.prototype_logits is None


def test_dino_head_is_cosine_similarity_and_loss_is_soft_cross_entropy():
    from bestiary.models.vision.dino_v2 import dino_loss

    model = bestiary.build("dino_v2", tiny=True).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 16, 16)).prototype_logits
    assert logits.shape == (3, 32) and logits.abs().max() <= 1.0 + 1e-6  # cosines
    student, teacher, center = torch.randn(4, 10, requires_grad=True), torch.randn(4, 10), torch.randn(1, 10)
    loss = dino_loss(student, teacher, center, student_temp=0.1, teacher_temp=0.04)
    target = torch.softmax((teacher - center) / 0.04, dim=-1)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(student / 0.1, target))


def test_dino_v2_bad_input():
    model = bestiary.build("dino_v2", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 20, 20): "H=16"})


DINOV3_RULES = [
    (r"^(cls_token|mask_token|register_tokens)$", r"embeddings.\1"),
    (r"^patch_embed\.proj\.", "embeddings.patch_embeddings."),
    (r"^blocks\.(\d+)\.attn\.out_proj\.", r"model.layer.\1.attention.o_proj."),
    (r"^blocks\.(\d+)\.attn\.", r"model.layer.\1.attention."),
    (r"^blocks\.(\d+)\.ls(\d)\.gamma", r"model.layer.\1.layer_scale\2.lambda1"),
    (r"^blocks\.(\d+)\.mlp\.(gate|up|down)\.", r"model.layer.\1.mlp.\2_proj."),
    (r"^blocks\.(\d+)\.", r"model.layer.\1."),
]


@pytest.mark.parametrize("ffn", ["mlp", "swiglu"])
def test_dino_v3_backbone_matches_transformers(ffn):
    from transformers import DINOv3ViTConfig, DINOv3ViTModel

    torch.manual_seed(0)
    hf_config = DINOv3ViTConfig(
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_register_tokens=2,
        image_size=16,
        patch_size=4,
        layerscale_value=0.5,
        use_gated_mlp=ffn == "swiglu",
        hidden_act="silu" if ffn == "swiglu" else "gelu",
    )
    hf = DINOv3ViTModel(hf_config).eval()
    ours = bestiary.build("dino_v3", tiny=True, head_prototypes=0, ffn=ffn).eval()
    copy_renamed(ours, hf.state_dict(), DINOV3_RULES)
    x = torch.randn(2, 3, 16, 24)  # non-square: rows and columns get different coordinates
    mask = torch.rand(2, 24) < 0.3
    with torch.no_grad():
        out = ours(x, mask=mask)
        ref = hf(x, bool_masked_pos=mask).last_hidden_state  # [CLS], registers, patches
    assert_dino_tokens_match(out, ref, n_registers=2)


def test_dino_v3_rope_depends_only_on_relative_position():
    """Rotated q.k between two patches is unchanged when both move by the same offset."""
    from bestiary.layers.positions import rotate_half
    from bestiary.models.vision.dino_v3 import rope_2d

    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)
    coords = torch.tensor([[0.1, -0.3], [0.5, 0.2], [0.1 + 0.25, -0.3 - 0.4], [0.5 + 0.25, 0.2 - 0.4]])
    cos, sin = rope_2d(coords, head_dim=8, base=100.0)
    rq = q * cos + rotate_half(q.expand(4, 8)) * sin  # (4, 8)
    rk = k * cos + rotate_half(k.expand(4, 8)) * sin
    torch.testing.assert_close(rq[0] @ rk[1], rq[2] @ rk[3])
    assert not torch.allclose(rq[0] @ rk[1], rq[0] @ rk[3])


def test_gram_anchoring_loss():
    import numpy as np

    from bestiary.models.vision.dino_v3 import gram_anchoring_loss

    torch.manual_seed(0)
    student = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 5, 4, dtype=torch.float64, requires_grad=True)
    loss = gram_anchoring_loss(student, teacher)
    # NumPy reference: squared Frobenius distance of cosine-similarity matrices, / N^2, batch mean
    s, g = student.detach().numpy(), teacher.detach().numpy()
    s = s / np.linalg.norm(s, axis=-1, keepdims=True)
    g = g / np.linalg.norm(g, axis=-1, keepdims=True)
    expected = np.mean([np.linalg.norm(s[b] @ s[b].T - g[b] @ g[b].T, "fro") ** 2 / 25 for b in range(2)])
    np.testing.assert_allclose(loss.item(), expected, rtol=1e-12)
    loss.backward()
    assert teacher.grad is None and student.grad.abs().sum() > 0  # the Gram teacher is frozen
    # only the similarity structure matters: rescaling patches changes nothing
    torch.testing.assert_close(
        gram_anchoring_loss(student * 3.0, student), torch.zeros((), dtype=torch.float64)
    )
    with pytest.raises(ValueError, match="same shape"):
        gram_anchoring_loss(student, teacher[:, :4])


def test_dino_v3_any_resolution_and_bad_input():
    model = bestiary.build("dino_v3", tiny=True).eval()
    assert model(torch.randn(1, 3, 32, 20)).patch_tokens.shape == (1, 8 * 5, 16)
    assert_rejects(model, {(1, 3, 18, 16): "multiples of 4", (1, 1, 16, 16): "C=3"})


def test_vision_kan_blocks_use_kan_feed_forward():
    from bestiary.layers.kan import KANLinear

    torch.manual_seed(0)
    model = bestiary.build("vision_kan", tiny=True).eval()
    block = model.blocks[0]
    assert all(isinstance(layer, KANLinear) for layer in list(block.mlp)[:2])
    x = torch.randn(2, 5, 16)
    with torch.no_grad():
        y = x + block.attn(block.norm1(x))
        expected = y + block.mlp[1](block.mlp[0](block.norm2(y)))
        torch.testing.assert_close(block(x), expected)
    model.train()
    model(torch.randn(2, 3, 16, 16)).pow(2).mean().backward()
    assert block.mlp[0].spline_coef.grad.abs().sum() > 0  # the spline edge functions are trained


def test_vision_kan_bad_input():
    model = bestiary.build("vision_kan", tiny=True)
    assert_rejects(model, {(1, 1, 16, 16): "C=3", (1, 3, 8, 8): "H=16"})


def test_nerf_positional_encoding_matches_numpy():
    import numpy as np

    from bestiary.models.vision.nerf import positional_encoding

    x = torch.randn(4, 3, dtype=torch.float64)
    out = positional_encoding(x, 3).numpy()
    xn = x.numpy()
    expected = [xn]
    for k in range(3):
        expected += [np.sin(2**k * np.pi * xn), np.cos(2**k * np.pi * xn)]
    np.testing.assert_allclose(out, np.concatenate(expected, axis=-1), rtol=1e-12, atol=1e-12)


def test_nerf_volume_render_matches_explicit_loop():
    import numpy as np

    from bestiary.models.vision.nerf import volume_render

    torch.manual_seed(0)
    rgb, sigma = torch.rand(2, 5, 3, dtype=torch.float64), torch.rand(2, 5, dtype=torch.float64) * 3
    t = torch.sort(torch.rand(2, 5, dtype=torch.float64) * 4, dim=1).values
    colour, weights = volume_render(rgb, sigma, t)
    for r in range(2):
        T, expected = 1.0, np.zeros(3)
        for i in range(5):
            delta = (t[r, i + 1] - t[r, i]).item() if i < 4 else 1e10
            alpha = 1 - np.exp(-sigma[r, i].item() * delta)
            expected += T * alpha * rgb[r, i].numpy()
            np.testing.assert_allclose(weights[r, i].item(), T * alpha, rtol=1e-6)
            T *= 1 - alpha
        np.testing.assert_allclose(colour[r].numpy(), expected, rtol=1e-6)


def test_nerf_density_ignores_direction_colour_does_not():
    model = bestiary.build("nerf", tiny=True).eval()
    points = torch.randn(1, 8, 3)
    d1 = torch.nn.functional.normalize(torch.randn(1, 8, 3), dim=-1)
    d2 = torch.nn.functional.normalize(torch.randn(1, 8, 3), dim=-1)
    with torch.no_grad():
        a, b = model(points, d1), model(points, d2)
    torch.testing.assert_close(a.sigma, b.sigma, rtol=0, atol=0)
    assert not torch.allclose(a.rgb, b.rgb)
    assert a.rgb.min() >= 0 and a.rgb.max() <= 1 and a.sigma.min() >= 0
    with pytest.raises(ShapeError, match="C=3"):
        model(torch.randn(1, 8, 2), d1)


def _single_gaussian_model(image_size, focal, mean, scale, opacity_logit, color_logit):
    model = bestiary.build("gaussian_splat", n_gaussians=len(mean), image_size=image_size, focal=focal)
    with torch.no_grad():
        model.means.copy_(torch.tensor(mean))
        model.log_scales.copy_(torch.tensor(scale).log()[:, None].expand(-1, 3))
        model.opacity_logits.copy_(torch.tensor(opacity_logit))
        model.color_logits.copy_(torch.tensor(color_logit))
    return model


def test_gaussian_splat_renders_the_analytic_projected_gaussian():
    """An isotropic Gaussian on the optical axis projects to an isotropic 2-D Gaussian of std f*s/z."""
    f, s, z, size = 10.0, 0.2, 4.0, 9
    model = _single_gaussian_model(size, f, [[0.0, 0.0, z]], [s], [0.0], [[0.0, 2.0, -2.0]])
    camera = torch.eye(4)[None]  # world = camera frame
    with torch.no_grad():
        out = model(camera)
    ys, xs = torch.meshgrid(torch.arange(size) - 4.0, torch.arange(size) - 4.0, indexing="ij")
    variance = (f * s / z) ** 2 + 0.3  # plus the low-pass dilation
    alpha = 0.5 * torch.exp(-0.5 * (xs**2 + ys**2) / variance)
    color = torch.sigmoid(torch.tensor([0.0, 2.0, -2.0]))
    torch.testing.assert_close(out.image[0], color[:, None, None] * alpha, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.alpha[0, 0], alpha, rtol=1e-5, atol=1e-6)


def test_gaussian_splat_front_gaussian_occludes_and_gradients_flow():
    red, blue = [8.0, -8.0, -8.0], [-8.0, -8.0, 8.0]
    model = _single_gaussian_model(
        5, 5.0, [[0.0, 0.0, 2.0], [0.0, 0.0, 4.0]], [0.5, 0.5], [8.0, 8.0], [red, blue]
    )
    out = model(torch.eye(4)[None])
    centre = out.image[0, :, 2, 2]
    assert centre[0] > 0.9 and centre[2] < 0.1  # the near (red) Gaussian hides the far one
    out.image.sum().backward()
    assert model.means.grad.abs().sum() > 0 and model.log_scales.grad.abs().sum() > 0
    with torch.no_grad():  # move the red one behind the blue one: now blue wins
        model.means[0, 2] = 6.0
        assert model(torch.eye(4)[None]).image[0, 2, 2, 2] > 0.9
    with pytest.raises(ShapeError, match="R=4"):
        model(torch.eye(3)[None])


def test_gaussian_splat_look_at_cameras_see_the_scene_upright():
    from bestiary.models.vision.gaussian_splat import look_at_cameras

    model = _single_gaussian_model(16, 16.0, [[0.0, 0.6, 0.0]], [0.1], [4.0], [[4.0, 4.0, 4.0]])
    with torch.no_grad():
        alpha = model(look_at_cameras(3, elevation=0.0)).alpha[:, 0]  # (3, H, W)
    for view in alpha:
        row = view.sum(dim=1).argmax()
        assert view.max() > 0.5 and row < 7  # world "up" is the top of the image


def test_window_partition_round_trip_and_shift_mask():
    from bestiary.layers.window_attention import shifted_window_mask, window_partition, window_reverse

    x = torch.randn(2, 8, 12, 5)
    windows = window_partition(x, 4)
    assert windows.shape == (2 * 2 * 3, 16, 5)
    torch.testing.assert_close(windows[1].view(4, 4, 5), x[0, 0:4, 4:8])  # second window of the first row
    torch.testing.assert_close(window_reverse(windows, 4, 8, 12), x)
    mask = shifted_window_mask(8, 8, 4, 2)  # (4 windows, 16, 16)
    assert (mask[0] == 0).all()  # the top-left window holds one contiguous region
    # the bottom-right window mixes 4 regions of 4 tokens each: 4 * 4 * 4 allowed pairs out of 256
    assert (mask[3] == 0).sum() == 64 and (mask[3] == -100).sum() == 192
