"""Zamba: a Mamba backbone with ONE shared attention block, re-applied every few layers.

Paper: "Zamba: A Compact 7B SSM Hybrid Model" (Glorioso, Anthony, Tokpanov et al., Zyphra, 2024,
arXiv:2405.16712).

Jamba gives each of its attention layers its own weights. Zamba keeps a single attention + MLP
block and calls it again and again (every `attn_layer_period` Mamba layers), so attention costs
almost no parameters: the 7B model spends them on the Mamba backbone. Two things make one block
useful at many depths:

- its input is the concatenation [x, e] of the current hidden state x and the ORIGINAL token
  embeddings e (width 2 d_model), so the block can always re-read the tokens themselves;
- each call site has its own Linear (d_model -> d_model) on the block's output, which is then added
  to the input of that layer's Mamba mixer: x <- x + Mamba(RMSNorm(x + W_i Shared([x, e]))).

The shared block is attention (n_heads heads of width 2 d_model / n_heads over the 2 d_model input,
scores scaled by sqrt(head_dim / 2), no positional encoding) then a SwiGLU MLP, each after an
RMSNorm and, as in the reference, with no residual inside. Each call keeps its own KV cache (the
keys differ from depth to depth). The Mamba layers are Mamba-1 split into `n_mamba_heads`
independent heads, each with its own x_proj and dt_proj (a per-head SSM over d_inner / H channels).

Where the shared block is called follows the released model (transformers' layout): at layer 2,
then at every layer 3 + j with j % attn_layer_period == attn_layer_offset (layers 7, 13, 19, ...).
Simplified: no padding masks.

Preset `zamba_7b` (Zyphra/Zamba-7B-v1): 76 layers, d_model 3712, 16 heads, 7,232,490,496 parameters
as transformers' ZambaForCausalLM (tied embedding and shared block counted once).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import make_mlp
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.checks import check_tokens
from bestiary.layers.kv_cache import Cache
from bestiary.layers.mamba import SCANS, causal_conv, inverse_softplus, sample_dt, selective_scan
from bestiary.layers.norms import RMSNorm
from bestiary.layers.state import NonFiniteStateError, RecurrentState
from bestiary.options import Rule, option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 64
    n_layers: int = 8
    n_heads: int = 4  # heads of the shared attention (over the 2 d_model concatenation)
    n_kv_heads: int | None = None
    d_ff: int = 256  # the shared block's SwiGLU MLP
    attn_layer_period: int = option(6, min=1)  # the shared block every this many layers ...
    attn_layer_offset: int = option(4, min=0)  # ... (see the module docstring for the exact layout)
    n_mamba_heads: int = option(2, min=1)  # independent SSM heads per Mamba layer
    d_state: int = 16
    d_conv: int = option(4, min=2)
    expand: int = option(2, min=1)
    dt_rank: int | None = option(None, min=1)  # None: ceil(d_model / 16)
    scan: str = option("sequential", choices=SCANS)
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


ZAMBA_7B = dict(vocab_size=32000, d_model=3712, n_layers=76, n_heads=16, n_kv_heads=16, d_ff=14848)


def shared_block_layers(c: Config) -> set[int]:
    """The layers where the shared attention block is called (transformers' Zamba layout)."""
    calls = {2} if c.n_layers > 2 else set()
    return calls | {i for i in range(3, c.n_layers) if (i - 3) % c.attn_layer_period == c.attn_layer_offset}


class MultiHeadMambaMixer(nn.Module):
    """Mamba-1 with its d_inner channels split into n_mamba_heads independent heads: each head has
    its own x_proj (-> dt_low, B, C) and dt_proj, so its own B_t, C_t and step sizes.

        x -> in_proj -> [u, z] -> conv, SiLU -> u (B, T, H, P)
        per head h: [dt_low, B, C] = x_proj_h(u_h);  dt = softplus(dt_proj_h(dt_low) + bias_h)
                    y_h = selective_scan(u_h, dt, A_h, B, C, D_h)       (layers/mamba.py)
        y * SiLU(z) -> out_proj

    Per-head weights are stored as stacked tensors (x_proj_weight (H, R + 2N, P), dt_proj_weight
    (H, P, R), ...), named as transformers' ZambaMambaMixer."""

    def __init__(
        self,
        d_model: int,
        *,
        n_heads: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_rank: int | None = None,
        scan: str = "sequential",
    ):
        super().__init__()
        self.d_model, self.d_state, self.scan = d_model, d_state, scan
        self.d_inner = d_inner = expand * d_model
        if d_inner % n_heads:
            raise ValueError(f"expand * d_model = {d_inner} must be a multiple of n_mamba_heads={n_heads}")
        self.n_heads, self.head_dim = n_heads, d_inner // n_heads
        self.dt_rank = dt_rank = dt_rank or math.ceil(d_model / 16)
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner)
        self.x_proj_weight = nn.Parameter(torch.empty(n_heads, dt_rank + 2 * d_state, self.head_dim))
        self.dt_proj_weight = nn.Parameter(torch.empty(n_heads, self.head_dim, dt_rank))
        self.dt_proj_bias = nn.Parameter(torch.empty(n_heads, self.head_dim))
        self.A_log = nn.Parameter(torch.empty(n_heads, self.head_dim, d_state))
        self.D = nn.Parameter(torch.empty(n_heads, self.head_dim))
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """As Mamba's (S4D-real A, D = 1, log-uniform initial dt), per head."""
        if self.A_log.is_meta:
            return
        nn.init.uniform_(self.x_proj_weight, -(self.head_dim**-0.5), self.head_dim**-0.5)
        nn.init.uniform_(self.dt_proj_weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        dt = sample_dt(self.d_inner, 0.001, 0.1).view(self.n_heads, self.head_dim)
        self.dt_proj_bias.copy_(inverse_softplus(dt))
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32)
        self.A_log.copy_(torch.log(A).expand_as(self.A_log))
        self.D.fill_(1.0)

    def init_cache(self, batch: int) -> RecurrentState:
        """conv: (B, d_inner, d_conv - 1); ssm: (B, H, P, N)."""
        return RecurrentState(self, batch, ("conv", "ssm"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, d_inner) each
        u, window = causal_conv(u, self.conv1d, None if cache is None else cache["conv"])
        u = F.silu(u).unflatten(-1, (self.n_heads, self.head_dim))  # (B, T, H, P)
        params = torch.einsum("bthp,hrp->bthr", u, self.x_proj_weight)  # (B, T, H, R + 2N)
        dt_low, B, C = params.split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dt = torch.einsum("bthr,hpr->bthp", dt_low, self.dt_proj_weight)
        dt = F.softplus(dt + self.dt_proj_bias)  # (B, T, H, P)
        A = -torch.exp(self.A_log)  # (H, P, N)
        h0 = None if cache is None else cache["ssm"]
        outputs, states = [], []
        for h in range(self.n_heads):  # each head is an independent Mamba SSM
            y_h, state_h = selective_scan(
                u[:, :, h],
                dt[:, :, h],
                A[h],
                B[:, :, h],
                C[:, :, h],
                self.D[h],
                h0=None if h0 is None else h0[:, h],
                scan=self.scan,
            )
            outputs.append(y_h)  # (B, T, P)
            states.append(state_h)  # (B, P, N)
        if cache is not None:
            cache["conv"], cache["ssm"] = window, torch.stack(states, dim=1)
            cache.length += x.shape[1]
        y = torch.cat(outputs, dim=-1)  # (B, T, d_inner)
        return self.out_proj(y * F.silu(z))


class SharedAttentionBlock(nn.Module):
    """The block Zamba re-uses at many depths: t = MLP(RMSNorm(Attention(RMSNorm([x, e])))).

    x: the hidden state, e: the token embeddings, both (B, T, d_model); t: (B, T, d_model)."""

    def __init__(self, c: Config):
        super().__init__()
        width = 2 * c.d_model  # [x, e]
        head_dim = width // c.n_heads
        self.input_norm = RMSNorm(width, c.norm_eps)
        self.attention = MultiHeadAttention(
            width,
            c.n_heads,
            n_kv_heads=c.n_kv_heads,
            bias=False,
            causal=True,
            scale=(head_dim / 2) ** -0.5,  # the reference's scale: as if heads were d_model / n_heads wide
        )
        # the attention reads 2 d_model but writes d_model: replace its square output projection
        self.attention.out_proj = nn.Linear(c.n_heads * head_dim, c.d_model, bias=False)
        self.mlp_norm = RMSNorm(c.d_model, c.norm_eps)
        self.mlp = make_mlp("swiglu", c.d_model, c.d_ff)

    def forward(self, x: torch.Tensor, embeddings: torch.Tensor, *, cache: object = None) -> torch.Tensor:
        h = self.input_norm(torch.cat([x, embeddings], dim=-1))  # (B, T, 2 d_model)
        h = self.attention(h) if cache is None else self.attention(h, cache=cache)  # (B, T, d_model)
        return self.mlp(self.mlp_norm(h))


class ZambaLayer(nn.Module):
    """x -> x + Mamba(RMSNorm(x [+ W t])): t is the shared block's output at this depth (if called here)."""

    def __init__(self, c: Config, calls_shared_block: bool):
        super().__init__()
        self.norm = RMSNorm(c.d_model, c.norm_eps)
        self.mixer = MultiHeadMambaMixer(
            c.d_model,
            n_heads=c.n_mamba_heads,
            d_state=c.d_state,
            d_conv=c.d_conv,
            expand=c.expand,
            dt_rank=c.dt_rank,
            scan=c.scan,
        )
        # this call site's own map of the shared block's output
        self.linear = nn.Linear(c.d_model, c.d_model, bias=False) if calls_shared_block else None

    def forward(
        self, x: torch.Tensor, shared_out: torch.Tensor | None = None, *, cache: object = None
    ) -> torch.Tensor:
        mixer_in = x if shared_out is None else x + self.linear(shared_out)
        y = self.mixer(self.norm(mixer_in)) if cache is None else self.mixer(self.norm(mixer_in), cache=cache)
        return x + y


@register(
    "zamba",
    family="ssm",
    config=Config,
    summary="Zamba: a Mamba backbone with one shared attention+MLP block re-applied every few layers "
    "on [hidden state, token embeddings].",
    paper="Zamba: A Compact 7B SSM Hybrid Model",
    year=2024,
    arxiv="2405.16712",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=3, n_heads=2, d_ff=32, d_state=4),
    presets={
        "zamba_7b": Preset(
            ZAMBA_7B,
            params=7_232_490_496,
            source="Zyphra/Zamba-7B-v1 config built as transformers ZambaForCausalLM on the meta device "
            "(tied embedding and shared block counted once)",
        )
    },
    outputs="logits (B, T, vocab_size)",
    rules=[
        Rule(
            lambda c: c.attn_layer_offset < c.attn_layer_period,
            "attn_layer_offset={attn_layer_offset} must be < attn_layer_period={attn_layer_period}",
        ),
        Rule(
            lambda c: (2 * c.d_model) % c.n_heads == 0,
            "n_heads={n_heads} must divide 2 * d_model (d_model={d_model}): the shared attention reads [x, e]",
        ),
    ],
)
class Zamba(CausalLM):
    def __init__(self, config: Config):
        calls = shared_block_layers(config)
        super().__init__(config, [ZambaLayer(config, i in calls) for i in range(config.n_layers)])
        self.shared = SharedAttentionBlock(config)
        self.reset_parameters()  # again, now that the shared block exists (the head stays tied)

    def init_cache(self, batch: int = 1) -> Cache:
        """Per layer: its Mamba state, and where the shared block is called, that call's own KV cache
        (a Cache of [KVCache, RecurrentState])."""
        layers = []
        for layer in self.blocks:
            state = layer.mixer.init_cache(batch)
            layers.append(
                state if layer.linear is None else Cache([self.shared.attention.init_cache(batch), state])
            )
        return Cache(layers)

    def forward_features(
        self, tokens: torch.Tensor, *, cache: Cache | None = None, padding_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """tokens (B, T) -> final-normed hidden states (B, T, d_model)."""
        check_tokens(tokens, self.config.vocab_size)
        if padding_mask is not None:
            raise ValueError("Zamba reads tokens left to right with a running state and cannot skip padding")
        embeddings = self.tok_embed(tokens)  # (B, T, d_model): e, re-read by every shared-block call
        x = embeddings
        for i, layer in enumerate(self.blocks):
            layer_cache = None if cache is None else cache[i]
            try:
                if layer.linear is None:
                    x = layer(x, cache=layer_cache)
                else:
                    kv, state = (None, None) if layer_cache is None else layer_cache
                    x = layer(x, self.shared(x, embeddings, cache=kv), cache=state)
            except NonFiniteStateError as error:
                raise NonFiniteStateError(f"blocks.{i}: {error}") from None
        if cache is not None:
            cache.advance(tokens.shape[1])
        return self.norm(x)


# ---------------------------------------------- transformers checkpoint names -> ours
# ZambaForCausalLM, `i` = layer. Hybrid layers hold `mamba_decoder` and the tied `shared_transf` (the
# same tensors at every call site: all map to `shared.`). The reference interleaves in_proj's rows
# (u_0, z_0, u_1, z_1, ...): `zamba_state_dict` de-interleaves them into our [u; z].
HF_ZAMBA_NAMES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.final_layernorm\.weight", r"norm.weight"),
    (r"model\.layers\.(\d+)\.(?:mamba_decoder\.)?input_layernorm\.weight", r"blocks.\1.norm.weight"),
    (r"model\.layers\.(\d+)\.(?:mamba_decoder\.)?mamba\.(.+)", r"blocks.\1.mixer.\2"),
    (r"model\.layers\.(\d+)\.linear\.weight", r"blocks.\1.linear.weight"),
    (
        r"model\.layers\.\d+\.shared_transf\.self_attn\.([qkv])_proj\.weight",
        r"shared.attention.\1_proj.weight",
    ),
    (r"model\.layers\.\d+\.shared_transf\.self_attn\.o_proj\.weight", r"shared.attention.out_proj.weight"),
    (r"model\.layers\.\d+\.shared_transf\.input_layernorm\.weight", r"shared.input_norm.weight"),
    (r"model\.layers\.\d+\.shared_transf\.pre_ff_layernorm\.weight", r"shared.mlp_norm.weight"),
    (
        r"model\.layers\.\d+\.shared_transf\.feed_forward\.(gate|up|down)_proj\.weight",
        r"shared.mlp.\1.weight",
    ),
]


def zamba_state_dict(hf: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A transformers Zamba state dict -> ours (HF_ZAMBA_NAMES; lm_head is tied to the embedding)."""
    out = {}
    for name, tensor in hf.items():
        if name == "lm_head.weight":
            continue
        for pattern, replacement in HF_ZAMBA_NAMES:
            if re.fullmatch(pattern, name):
                name = re.sub(pattern, replacement, name)
                break
        else:
            raise KeyError(f"no mapping for checkpoint tensor {name!r}")
        if name.endswith("mixer.in_proj.weight"):  # rows u_0, z_0, u_1, z_1, ... -> [u; z]
            tensor = torch.cat([tensor[0::2], tensor[1::2]])
        out[name] = tensor
    return out
