"""Jamba: Mamba layers with a few attention layers, and mixture-of-experts MLPs every other layer.

Paper: "Jamba: A Hybrid Transformer-Mamba Language Model" (Lieber, Lenz, Bata et al., AI21 Labs,
2024, arXiv:2403.19887).

A Mamba layer reads text at a constant cost per token and keeps a fixed-size state, but it recalls
exact earlier tokens poorly (in-context learning, copying); attention does that well at a cost that
grows with the context. Jamba interleaves them: within each period of `attn_layer_period` (8) layers
one is attention (layer `attn_layer_offset`), the other seven Mamba, so the KV cache is 8x smaller
than a transformer's. To add capacity without adding compute per token, every `expert_layer_period`-th
MLP (2) is a sparse mixture of `n_experts` (16) SwiGLU experts, top_k (2) per token (`layers/moe.py`).

Two details from the paper: the attention layers have NO positional encoding (the Mamba layers before
them already carry order), and the Mamba layers normalise their step size dt and their B and C with
RMSNorm inside the mixer, which the paper found kept large models' activations from blowing up. All
other norms are pre-norm RMSNorm, the head is untied.

Simplified: no padding masks inside the Mamba layers; the router's load-balancing loss is computed
(each MoE layer's `aux_loss`) but adding it to the loss is the training loop's job.

Preset `jamba_v0_1` (ai21labs/Jamba-v0.1): 32 layers, d_model 4096, 16 experts top-2, 51,570,323,328
parameters, as transformers' JambaForCausalLM.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, make_mlp
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.mamba import SCANS, MambaMixer, causal_conv, selective_scan
from bestiary.layers.moe import MoE
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 8
    n_heads: int = 4
    n_kv_heads: int | None = 2  # grouped-query attention
    d_ff: int = 256  # hidden width of each SwiGLU MLP and of each expert
    attn_layer_period: int = option(8, min=1)  # one attention layer per this many layers ...
    attn_layer_offset: int = option(4, min=0)  # ... at this index within the period
    expert_layer_period: int = option(2, min=1)  # one MoE MLP per this many layers ...
    expert_layer_offset: int = option(1, min=0)  # ... at this index within the period
    n_experts: int = 16  # 1: every MLP is dense
    top_k: int = 2
    d_state: int = 16  # N of the Mamba layers
    d_conv: int = option(4, min=2)
    expand: int = option(2, min=1)
    dt_rank: int | None = option(None, min=1)  # None: ceil(d_model / 16)
    scan: str = option("sequential", choices=SCANS)
    norm_eps: float = 1e-6
    tie_embeddings: bool = False


JAMBA_V0_1 = dict(
    vocab_size=65536,
    d_model=4096,
    n_layers=32,
    n_heads=32,
    n_kv_heads=8,
    d_ff=14336,
    n_experts=16,
    top_k=2,
)


class JambaMambaMixer(MambaMixer):
    """Mamba-1 (`layers/mamba.py`) with RMSNorm on dt_low, B and C before they are used (the Jamba
    paper's fix for activations that grow with scale). Names as transformers' JambaMambaMixer."""

    def __init__(self, d_model: int, *, norm_eps: float = 1e-6, **mamba_options):
        super().__init__(d_model, **mamba_options)
        self.dt_layernorm = RMSNorm(self.dt_rank, norm_eps)
        self.b_layernorm = RMSNorm(self.d_state, norm_eps)
        self.c_layernorm = RMSNorm(self.d_state, norm_eps)

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model); the steps of MambaMixer.forward plus the three norms."""
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, d_inner) each
        u, window = causal_conv(u, self.conv1d, None if cache is None else cache["conv"])
        u = F.silu(u)
        dt_low, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt_low, B, C = self.dt_layernorm(dt_low), self.b_layernorm(B), self.c_layernorm(C)  # Jamba's norms
        dt = F.softplus(self.dt_proj(dt_low))  # (B, T, d_inner)
        A = -torch.exp(self.A_log)  # (d_inner, N)
        h0 = None if cache is None else cache["ssm"]
        y, h_last = selective_scan(u, dt, A, B, C, self.D, h0=h0, scan=self.scan, chunk_size=self.chunk_size)
        if cache is not None:
            cache["conv"], cache["ssm"] = window, h_last
            cache.length += x.shape[1]
        return self.out_proj(y * F.silu(z))


def jamba_blocks(c: Config) -> list[Block]:
    """Layer i: attention if i % attn_layer_period == attn_layer_offset, else Mamba; its MLP a MoE if
    i % expert_layer_period == expert_layer_offset (and n_experts > 1), else a SwiGLU."""
    blocks = []
    for i in range(c.n_layers):
        if i % c.attn_layer_period == c.attn_layer_offset:
            mixer: nn.Module = MultiHeadAttention(
                c.d_model, c.n_heads, n_kv_heads=c.n_kv_heads, bias=False, causal=True
            )  # no positional encoding: the Mamba layers carry order
        else:
            mixer = JambaMambaMixer(
                c.d_model,
                norm_eps=c.norm_eps,
                d_state=c.d_state,
                d_conv=c.d_conv,
                expand=c.expand,
                dt_rank=c.dt_rank,
                scan=c.scan,
            )
        if c.n_experts > 1 and i % c.expert_layer_period == c.expert_layer_offset:
            mlp: nn.Module = MoE(c.d_model, c.d_ff, c.n_experts, c.top_k)
        else:
            mlp = make_mlp("swiglu", c.d_model, c.d_ff)
        blocks.append(Block(c.d_model, mixer, mlp, norm="rmsnorm", norm_eps=c.norm_eps))
    return blocks


@register(
    "jamba",
    family="ssm",
    config=Config,
    summary="Jamba: Mamba layers with one attention layer in eight and mixture-of-experts MLPs "
    "every other layer.",
    paper="Jamba: A Hybrid Transformer-Mamba Language Model",
    year=2024,
    arxiv="2403.19887",
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64,
        d_model=16,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1,
        d_ff=24,
        attn_layer_period=2,
        attn_layer_offset=1,
        n_experts=4,
        d_state=4,
    ),
    presets={
        "jamba_v0_1": Preset(
            JAMBA_V0_1,
            params=51_570_323_328,
            source="ai21labs/Jamba-v0.1 config built as transformers JambaForCausalLM on the meta device",
        )
    },
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: c.attn_layer_offset < c.attn_layer_period,
            "attn_layer_offset={attn_layer_offset} must be < attn_layer_period={attn_layer_period}",
        ),
        Rule(
            lambda c: c.expert_layer_offset < c.expert_layer_period,
            "expert_layer_offset={expert_layer_offset} must be < expert_layer_period={expert_layer_period}",
        ),
    ],
)
class Jamba(CausalLM):
    def __init__(self, config: Config):
        super().__init__(config, jamba_blocks(config))

    def aux_loss(self) -> torch.Tensor:
        """The load-balancing loss of the last forward, summed over the MoE layers (0 if none)."""
        losses = [
            b.mlp.aux_loss for b in self.blocks if isinstance(b.mlp, MoE) and b.mlp.aux_loss is not None
        ]
        return torch.stack(losses).sum() if losses else torch.zeros(())


# ---------------------------------------------- transformers checkpoint names -> ours
# JambaForCausalLM, `i` = layer. The experts are stored fused in transformers
# (feed_forward.experts.gate_up_proj (E, 2 d_ff, d_model), down_proj (E, d_model, d_ff)):
# `jamba_state_dict` splits them into our experts.{e}.gate/up/down after applying this table.
HF_JAMBA_NAMES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.final_layernorm\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"model\.layers\.(\d+)\.pre_ff_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.layers\.(\d+)\.mamba\.(.+)", r"blocks.\1.mixer.\2"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.weight", r"blocks.\1.mixer.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.mixer.out_proj.weight"),
    (r"model\.layers\.(\d+)\.feed_forward\.(gate|up|down)_proj\.weight", r"blocks.\1.mlp.\2.weight"),
    (r"model\.layers\.(\d+)\.feed_forward\.router\.weight", r"blocks.\1.mlp.router.weight"),
    (r"model\.layers\.(\d+)\.feed_forward\.experts\.(gate_up_proj|down_proj)", r"blocks.\1.mlp.experts.\2"),
]


def jamba_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers Jamba state dict -> ours (HF_JAMBA_NAMES, then the fused experts split)."""
    out = {}
    for name, tensor in hf.items():
        for pattern, replacement in HF_JAMBA_NAMES:
            if re.fullmatch(pattern, name):
                name = re.sub(pattern, replacement, name)
                break
        else:
            raise KeyError(f"no mapping for checkpoint tensor {name!r}")
        if name.endswith("experts.gate_up_proj"):
            prefix = name.removesuffix("gate_up_proj")
            for e, fused in enumerate(tensor):  # (2 d_ff, d_model): gate rows, then up rows
                out[f"{prefix}{e}.gate.weight"], out[f"{prefix}{e}.up.weight"] = fused.chunk(2, dim=0)
        elif name.endswith("experts.down_proj"):
            prefix = name.removesuffix("down_proj")
            for e, down in enumerate(tensor):  # (d_model, d_ff)
                out[f"{prefix}{e}.down.weight"] = down
        else:
            out[name] = tensor
    return out
