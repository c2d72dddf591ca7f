"""Nemotron-H: a transformer whose self-attention layers are mostly replaced by Mamba-2 layers.

Paper: "Nemotron-H: A Family of Accurate and Efficient Hybrid Mamba-Transformer Models" (NVIDIA,
Blakeman et al., 2025, arXiv:2504.03624).

Nemotron-H splits the usual transformer block in two and lets every layer be ONE of three things,
each a pre-norm residual step x <- x + f(RMSNorm(x)):

    M  a Mamba-2 (SSD) mixer (`layers/mamba.py`)      constant-size state per layer
    *  grouped-query self-attention, no positional encoding (the Mamba layers carry order)
    -  an MLP with squared-ReLU, up -> relu(.)^2 -> down (no gate)

and spells the stack out as a string, e.g. the 8B model's 52 layers
"M-M-M-M*-M-M-M-M-M*-...": 24 Mamba-2, 24 MLP and only 4 attention layers (about 8%), spread
evenly, never first. With so little attention, long generation is up to 3x faster than a
same-size transformer for similar accuracy (the paper's claim; the KV cache is 12x smaller).

Simplified: no MoE ('E') layers (later Nemotron models add them), no dt clamping at time_step_min
(it never triggers with the initial dt, and the reference's default upper limit is infinite).

Preset `nemotron_h_8b` (nvidia/Nemotron-H-8B-Base-8K): d_model 4096, the 52-layer pattern above,
8,100,852,736 parameters as transformers' NemotronHForCausalLM.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.mamba import SSD_MODES, Mamba2Mixer
from bestiary.layers.mlp import FeedForward
from bestiary.layers.state import RecurrentState
from bestiary.options import Range, Rule, option
from bestiary.registry import Preset, register

LAYER_KINDS = {"M": "Mamba-2", "*": "attention", "-": "MLP"}


@dataclass(frozen=True)
class PatternRange(Range):
    """`pattern`: a non-empty string of the letters of LAYER_KINDS."""

    def allows(self, value: object) -> bool:
        return isinstance(value, str) and len(value) > 0 and set(value) <= set(LAYER_KINDS)

    def describe(self) -> str:
        kinds = ", ".join(f"{k!r} ({v})" for k, v in LAYER_KINDS.items())
        return f"one of the letters {kinds}, one per layer"


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 6  # must equal len(pattern)
    pattern: str = field(default="M-M*M-", metadata={"range": PatternRange(choices=tuple(LAYER_KINDS))})
    n_heads: int = 4
    n_kv_heads: int | None = 2
    head_dim: int | None = None  # None: d_model // n_heads
    d_ff: int = 512  # the squared-ReLU MLP layers
    d_state: int = 16  # N of the Mamba-2 layers
    ssm_head_dim: int = option(32, min=1)  # P: d_inner = expand * d_model must be a multiple
    n_groups: int = option(2, min=1)  # B/C groups of the Mamba-2 layers
    d_conv: int = option(4, min=2)
    expand: int = option(2, min=1)
    chunk_size: int = option(64, min=1)  # the SSD chunk
    ssd_mode: str = option("chunked", choices=SSD_MODES)
    norm_eps: float = 1e-5
    tie_embeddings: bool = False


NEMOTRON_H_8B = dict(
    vocab_size=131072,
    d_model=4096,
    n_layers=52,
    pattern="M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M*-M-M-M-M-M-",
    n_heads=32,
    n_kv_heads=8,
    head_dim=128,
    d_ff=21504,
    d_state=128,
    ssm_head_dim=64,
    n_groups=8,
    chunk_size=128,
)


class PositionwiseMLP(FeedForward):
    """An MLP in a mixer's place (Nemotron-H's '-' layers): it mixes channels within each position,
    never across positions, so its decoding state is empty."""

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ())

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        if cache is not None:
            cache.check(self, x)
            cache.length += x.shape[1]
        return super().forward(x)


def make_layer(kind: str, c: Config) -> nn.Module:
    """The mixer of one layer: 'M' Mamba-2, '*' attention, '-' MLP."""
    if kind == "M":
        return Mamba2Mixer(
            c.d_model,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            head_dim=c.ssm_head_dim,
            n_groups=c.n_groups,
            chunk_size=c.chunk_size,
            mode=c.ssd_mode,
            norm_eps=c.norm_eps,
        )
    if kind == "*":
        return MultiHeadAttention(
            c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, head_dim=c.head_dim, bias=False, causal=True
        )
    return PositionwiseMLP(c.d_model, c.d_ff, activation="squared_relu", bias=False)


@register(
    "nemotron_h",
    family="transformer",
    config=Config,
    summary="Nemotron-H: a layer pattern of Mamba-2, MLP and a few attention layers ('M-M-M*-...').",
    paper="Nemotron-H: A Family of Accurate and Efficient Hybrid Mamba-Transformer Models",
    year=2025,
    arxiv="2504.03624",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=16,
        n_layers=3,
        pattern="M*-",
        n_heads=2,
        n_kv_heads=1,
        d_ff=32,
        d_state=4,
        ssm_head_dim=8,
        n_groups=1,
    ),
    presets={
        "nemotron_h_8b": Preset(
            NEMOTRON_H_8B,
            params=8_100_852_736,
            source="nvidia/Nemotron-H-8B-Base-8K config built as transformers NemotronHForCausalLM on "
            "the meta device",
        )
    },
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: len(c.pattern) == c.n_layers,
            "pattern={pattern!r} must have n_layers={n_layers} letters",
        ),
        Rule(
            lambda c: (
                (c.expand * c.d_model) % c.ssm_head_dim == 0
                and (c.expand * c.d_model // c.ssm_head_dim) % c.n_groups == 0
            ),
            "expand * d_model must be a multiple of ssm_head_dim={ssm_head_dim}, in heads that split "
            "into n_groups={n_groups}",
        ),
    ],
)
class NemotronH(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = [
            Block(c.d_model, make_layer(kind, c), None, norm="rmsnorm", norm_eps=c.norm_eps)
            for kind in c.pattern
        ]
        super().__init__(config, blocks)


# ---------------------------------------------- transformers checkpoint names -> ours (bestiary.llm.convert)
# NemotronHForCausalLM, `i` = layer; every layer is one Block whose `mixer` is the layer itself.
HF_NEMOTRON_H_NAMES = [
    (r"model\.embeddings\.weight", r"tok_embed.weight"),
    (r"model\.norm_f\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"model\.layers\.(\d+)\.norm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"model\.layers\.(\d+)\.mixer\.o_proj\.weight", r"blocks.\1.mixer.out_proj.weight"),
    (r"model\.layers\.(\d+)\.mixer\.(up|down)_proj\.weight", r"blocks.\1.mixer.\2.weight"),
    (r"model\.layers\.(\d+)\.mixer\.(.+)", r"blocks.\1.mixer.\2"),  # Mamba-2 and q/k/v: same names
]
