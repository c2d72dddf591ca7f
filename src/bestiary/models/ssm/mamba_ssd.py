"""Mamba-2: Mamba with the state space duality (SSD) layer and its chunked matmul algorithm.

Paper: "Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured State
Space Duality" (Tri Dao & Albert Gu, 2024, arXiv:2405.21060).

The idea: if the state transition is a scalar per head (A_t = a_t I instead of Mamba-1's diagonal),
the whole sequence map y = M x has a simple matrix M[t, s] = (C_t . B_s) a_{s+1} ... a_t: causal
linear attention with a decay mask. So the same layer can be computed two ways: as a recurrence
(linear in T, what decoding does) or as masked attention (quadratic, but made of matmuls, which is
what accelerators are fast at). The SSD algorithm mixes them: quadratic within chunks of
`chunk_size` positions, recurrence over the T / chunk_size chunk boundaries. Mamba-2 also moves
the B, C and dt projections to the block's input (in parallel with x, like q, k, v), shares B, C
across the heads of a group, and adds a gated RMSNorm before the output projection.

Each layer is x + Mamba2Mixer(RMSNorm(x)) (`layers/mamba.py`) in a `CausalLM`. `mode="chunked"`
(default) is SSD; `mode="recurrent"` is the loop (tested equal, outputs and gradients); one-token
decoding steps always use the recurrence. Simplified: no fused kernels, no dt clamping (the
reference's default limit (0, inf) is a no-op), A initialised as -(1..H) like transformers (the
reference draws it from U[1, 16]).

Preset `mamba2_130m` (state-spaces/mamba2-130m: d_model 768, 24 layers, N 128, head_dim 64 (24
heads), 1 group, chunk 256, vocab 50277 padded to a multiple of 16 = 50288, tied embeddings):
128,989,632 parameters, as transformers' Mamba2ForCausalLM built from the same config.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.mamba import SSD_MODES, Mamba2Mixer
from bestiary.options import Rule, option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    d_state: int = 64  # N: state size (per head, shared by head_dim channels)
    head_dim: int = 32  # P: channels per head; n_heads = expand * d_model / head_dim
    n_groups: int = option(1, min=1)  # heads per group share B and C
    d_conv: int = option(4, min=1)
    expand: int = option(2, min=1)  # d_inner = expand * d_model
    chunk_size: int = option(64, min=1)  # SSD chunk length
    mode: str = option("chunked", choices=SSD_MODES)
    bias: bool = False
    conv_bias: bool = True
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    tie_embeddings: bool = True
    dt_min: float = option(0.001, gt=0.0)
    dt_max: float = option(0.1, gt=0.0)


MAMBA2_130M = dict(
    vocab_size=50288, d_model=768, n_layers=24, d_state=128, head_dim=64, n_groups=1, chunk_size=256
)
RULES = [
    Rule(
        lambda c: c.expand * c.d_model % c.head_dim == 0,
        "expand * d_model = {expand} * {d_model} must be a multiple of head_dim={head_dim}",
    ),
    Rule(
        lambda c: c.expand * c.d_model % c.head_dim or (c.expand * c.d_model // c.head_dim) % c.n_groups == 0,
        "the expand * d_model / head_dim heads must split evenly into n_groups={n_groups}",
    ),
]


@register(
    "mamba_ssd",
    family="ssm",
    config=Config,
    summary="Mamba-2: scalar-decay SSM heads computed by the chunked SSD algorithm (matmuls within chunks).",
    paper="Transformers are SSMs: Generalized Models and Efficient Algorithms Through Structured State Space Duality",
    year=2024,
    arxiv="2405.21060",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=8, head_dim=8, chunk_size=4),
    presets={
        "mamba2_130m": Preset(
            MAMBA2_130M,
            params=128_989_632,
            source="state-spaces/mamba2-130m config as transformers Mamba2ForCausalLM (tied) on the meta device",
        )
    },
    outputs="logits (B, T, vocab_size)",
    rules=RULES,
)
class MambaSSD(CausalLM):
    """tokens (B, T) -> logits (B, T, vocab_size): n_layers x [x + Mamba2Mixer(RMSNorm(x))]."""

    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: Mamba2Mixer(
                c.d_model,
                d_state=c.d_state,
                d_conv=c.d_conv,
                expand=c.expand,
                head_dim=c.head_dim,
                n_groups=c.n_groups,
                chunk_size=c.chunk_size,
                mode=c.mode,
                bias=c.bias,
                conv_bias=c.conv_bias,
                norm_eps=c.norm_eps,
                dt_min=c.dt_min,
                dt_max=c.dt_max,
            ),
            mlp=None,
            norm=c.norm,
        )
        super().__init__(config, blocks)


# transformers' Mamba2ForCausalLM tensor names -> ours (`i` = layer); the mixer's own tensors
# (in_proj, conv1d, dt_bias, A_log, D, norm, out_proj) keep their names.
HF_MAMBA2_NAMES = [
    (r"backbone\.embeddings\.weight", r"tok_embed.weight"),
    (r"backbone\.layers\.(\d+)\.norm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"backbone\.layers\.(\d+)\.mixer\.(.+)", r"blocks.\1.mixer.\2"),
    (r"backbone\.norm_f\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
]
