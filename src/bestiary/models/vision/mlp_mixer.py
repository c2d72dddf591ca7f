"""MLP-Mixer: an all-MLP vision architecture that alternates mixing across patches and channels.

Paper: "MLP-Mixer: An all-MLP Architecture for Vision" (Tolstikhin et al., 2021, arXiv:2105.01601).

Each block has two MLPs. The token-mixing MLP acts on every channel separately, along the patch
axis (it is the only place where patches exchange information — it replaces attention with a
fixed, learned, input-independent mixing). The channel-mixing MLP acts on every patch separately,
along the channel axis (exactly a transformer's feed-forward layer). No attention, no convolution
apart from the patch projection. In the library's terms a Mixer block is the one `Block` with a
token-mixing MLP as its token mixer.

Presets match timm's mixer_b16_224 / mixer_l16_224 parameter counts exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.block import Block
from bestiary.layers.drop_path import drop_path_rates
from bestiary.layers.mlp import FeedForward
from bestiary.layers.patch_embed import PatchEmbed, check_image, patch_count
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    in_channels: int = 3
    image_size: int = 32
    patch_size: int = 4
    num_classes: int = 10
    d_model: int = 128  # channels per patch (the paper's C)
    n_layers: int = 6
    d_ff: int = 512  # channel-mixing hidden size (the paper's D_C)
    token_dim: int = option(64, min=1)  # token-mixing hidden size (the paper's D_S)
    dropout: float = 0.0
    drop_path: float = 0.0


class TokenMixingMLP(FeedForward):
    """The token mixer of MLP-Mixer: an MLP along the patch axis, the same for every channel.
    (B, N, D) -> (B, N, D); its Linear layers have N inputs and outputs, so N is fixed."""

    def __init__(self, n_tokens: int, hidden: int, dropout: float = 0.0):
        super().__init__(n_tokens, hidden, activation="gelu", dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # transpose so the Linear layers run along the patch axis
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, D, N) -> (B, N, D)


def mixer_block(n_tokens: int, config: Config, drop_path: float) -> Block:
    """norm -> token-mixing MLP -> residual; norm -> channel-mixing MLP -> residual. (B, N, D)."""
    token_mlp = TokenMixingMLP(n_tokens, config.token_dim, config.dropout)
    channel_mlp = FeedForward(config.d_model, config.d_ff, activation="gelu", dropout=config.dropout)
    return Block(config.d_model, token_mlp, channel_mlp, norm_eps=1e-6, drop_path=drop_path)


def _preset(d_model: int, n_layers: int, token_dim: int, d_ff: int, params: int, name: str) -> Preset:
    return Preset(
        dict(
            d_model=d_model,
            n_layers=n_layers,
            token_dim=token_dim,
            d_ff=d_ff,
            patch_size=16,
            image_size=224,
            num_classes=1000,
        ),
        params=params,
        source=f"timm {name} (paper Table 1: Mixer-B/16 59M, Mixer-L/16 207M)",
    )


@register(
    "mlp_mixer",
    family="vision",
    config=Config,
    summary="MLP-Mixer: alternate MLPs across patches (token mixing) and across channels.",
    paper="MLP-Mixer: An all-MLP Architecture for Vision",
    year=2021,
    arxiv="2105.01601",
    input_kind="image",
    tiny=dict(image_size=16, patch_size=4, d_model=16, n_layers=2, d_ff=32, token_dim=8),
    presets={
        "mixer_b16": _preset(768, 12, 384, 3072, 59_880_472, "mixer_b16_224"),
        "mixer_l16": _preset(1024, 24, 512, 4096, 208_196_168, "mixer_l16_224"),
    },
    outputs="logits (B, num_classes)",
)
class MLPMixer(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        self.config = config
        self.num_features = config.d_model
        # the token-mixing MLP has one weight per patch position: the number of patches is fixed
        n_tokens = patch_count(config.image_size, config.patch_size)
        self.patch_embed = PatchEmbed(config.in_channels, config.d_model, config.patch_size)
        rates = drop_path_rates(config.drop_path, config.n_layers)
        self.blocks = nn.Sequential(*[mixer_block(n_tokens, config, rate) for rate in rates])
        self.norm = nn.LayerNorm(config.d_model, eps=1e-6)
        self.head = nn.Linear(config.d_model, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the normalised patch tokens (B, N, D)."""
        c = self.config
        check_image(x, c.in_channels, multiple_of=c.patch_size, image_size=c.image_size)
        return self.norm(self.blocks(self.patch_embed(x)))  # (B, N, D)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, N, D) -> logits (B, num_classes): global average over patches, then Linear."""
        return self.head(features.mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
