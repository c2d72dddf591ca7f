"""CAFormer: a MetaFormer with separable-conv mixers in the first two stages and attention after.

Paper: "MetaFormer Baselines for Vision" (Yu, Si, Zhou, Zhou, Wang, Feng & Yan, 2022,
arXiv:2210.13452).

Convolutions are cheap and local, which suits the early high-resolution stages (56x56 tokens at
224 px); attention is global but quadratic in the token count, which suits the late stages (14x14
and 7x7). The network is the MetaFormer baselines' (`bestiary.layers.metaformer_net`, shared with
the `metaformer` entry) with token_mixers = (sepconv, sepconv, attention, attention); CAFormer-B36
reached 85.5% ImageNet-1k top-1 at 224 px without extra data.

Presets follow the reference code (sail-sg/metaformer, timm `caformer_*`). No exact parameter count
is published — the paper and timm's model cards give millions rounded to 0.1 (s18: 26.3M) — so the
presets carry `params=None` and tests/models/vision/test_caformer.py checks the rounded figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.metaformer_net import MIXERS, MetaFormerConfig, MetaFormerNet
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config(MetaFormerConfig):
    token_mixers: tuple[str, ...] = option(("sepconv", "sepconv", "attention", "attention"), choices=MIXERS)


def _preset(depths: tuple[int, ...], dims: tuple[int, ...], rounded: str, name: str) -> Preset:
    return Preset(
        dict(depths=depths, dims=dims, num_classes=1000, image_size=224),
        params=None,
        source=f"no exact count published; timm {name} card / paper Table: {rounded} parameters",
    )


@register(
    "caformer",
    family="vision",
    config=Config,
    summary="CAFormer: MetaFormer with separable convs early and self-attention in the last two stages.",
    paper="MetaFormer Baselines for Vision",
    year=2022,
    arxiv="2210.13452",
    input_kind="image",
    tiny=dict(depths=(1, 1, 1, 1), dims=(8, 8, 16, 16), head_dim=8, image_size=32),
    presets={
        "caformer_s18": _preset((3, 3, 9, 3), (64, 128, 320, 512), "26.3M", "caformer_s18"),
        "caformer_s36": _preset((3, 12, 18, 3), (64, 128, 320, 512), "39.3M", "caformer_s36"),
        "caformer_m36": _preset((3, 12, 18, 3), (96, 192, 384, 576), "56.2M", "caformer_m36"),
        "caformer_b36": _preset((3, 12, 18, 3), (128, 256, 512, 768), "98.8M", "caformer_b36"),
    },
    outputs="logits (B, num_classes)",
)
class CAFormer(MetaFormerNet):
    """The MetaFormer baselines network with CAFormer's mixers."""
