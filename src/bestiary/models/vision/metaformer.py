"""MetaFormer: the general "token mixer + channel MLP" architecture, with a choice of mixer per stage.

Papers: "MetaFormer is Actually What You Need for Vision" (Yu et al., 2021, arXiv:2111.11418)
and "MetaFormer Baselines for Vision" (Yu et al., 2022, arXiv:2210.13452), whose network this
entry builds.

Every block is `x + mixer(norm(x))` then `x + mlp(norm(x))`; only the token mixer changes, one
kind per stage (`token_mixers`):
- "identity": no mixing at all (IdentityFormer): a surprisingly strong baseline,
- "pooling":  3x3 average pool minus the token (PoolFormerV2),
- "sepconv":  MobileNetV2-style separable conv, 1x1 -> 7x7 depthwise -> 1x1 (ConvFormer),
- "attention": multi-head self-attention over all tokens of the stage.

The papers' claim: much of a transformer's success comes from this general structure, not from
attention. The network (four stages, StarReLU MLPs, bias-free LayerNorms, ResScale, an MLP head)
is `bestiary.layers.metaformer_net.MetaFormerNet`, shared with `caformer`, which is the same
network with separable convolutions early and attention late.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.metaformer_net import MetaFormerConfig, MetaFormerNet
from bestiary.registry import register


@dataclass(kw_only=True)
class Config(MetaFormerConfig):
    """The options of `MetaFormerConfig`; the default mixers are pooling in every stage (PoolFormerV2)."""


@register(
    "metaformer",
    family="vision",
    config=Config,
    summary="MetaFormer: norm -> any token mixer -> residual, norm -> MLP -> residual, in four stages.",
    paper="MetaFormer Baselines for Vision",
    year=2022,
    arxiv="2210.13452",
    input_kind="image",
    tiny=dict(
        depths=(1, 1, 1, 1),
        dims=(8, 8, 16, 16),
        token_mixers=("identity", "pooling", "sepconv", "attention"),
        head_dim=8,
        image_size=32,
    ),
    outputs="logits (B, num_classes)",
)
class MetaFormer(MetaFormerNet):
    """The MetaFormer baselines network with one token mixer kind per stage."""
