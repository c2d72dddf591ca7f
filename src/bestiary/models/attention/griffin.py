"""Griffin: gated linear recurrences (RG-LRU) mixed with local attention.

Paper: "Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language
Models" (De, Smith, Fernando et al., 2024, arXiv:2402.19427); released as RecurrentGemma.

A recurrence alone compresses the past into a fixed state and forgets details; attention keeps
every detail but costs memory that grows with the context. Griffin uses both, in a fixed pattern:
two residual blocks whose temporal mixer is the RG-LRU recurrent block
(`bestiary.layers.rg_lru`), then one whose mixer is multi-query attention over a sliding window
(local attention: bounded memory too). Every block has the same gated MLP (GeGLU). So the whole
model decodes with a constant-size cache: recurrent states plus windows of keys and values.

Gemma conventions the reference model follows, kept so that its weights load unchanged:
embeddings scaled by sqrt(d_model), logits soft-capped at 30, rotary embedding on half of each
head's dimensions, biases on the recurrent block's projections and the MLP. (The reference rounds
sqrt(d_model) to bfloat16; we don't, so checkpoints with a d_model whose root is not exact in
bfloat16 give logits that differ in the third digit.)

Preset `recurrentgemma_2b`: 26 layers, d_model 2560, 10 heads with one shared key/value head,
window 2048, vocab 256000 (2,682,862,080 parameters, as transformers' RecurrentGemmaForCausalLM).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.block import Block, prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.positions import RotaryEmbedding
from bestiary.layers.rg_lru import SCANS, RecurrentBlock
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 6
    n_heads: int = 4  # attention heads; also the number of blocks of the RG-LRU's gates
    n_kv_heads: int | None = 1  # multi-query attention
    d_ff: int = 384  # hidden width of each branch of the GeGLU MLP (3 d_model in the paper's models)
    lru_width: int | None = option(None, min=1)  # the recurrent branch's width (None: d_model)
    kernel_size: int = 4  # the short causal conv before the RG-LRU
    attention_every: int = option(3, min=1)  # layer i is local attention when (i + 1) % attention_every == 0
    sliding_window: int = option(2048, min=1)  # local attention span
    rope_theta: float = 10000.0
    rope_fraction: float = option(0.5, gt=0.0, max=1.0)  # share of each head's dims that RoPE turns
    norm_eps: float = 1e-6
    embed_scale: bool = True
    logit_soft_cap: float | None = option(30.0, gt=0.0)
    tie_embeddings: bool = True
    scan: str = option("hillis_steele", choices=tuple(SCANS))  # how the RG-LRU runs a sequence


RECURRENTGEMMA_2B = dict(
    vocab_size=256000,
    d_model=2560,
    n_layers=26,
    n_heads=10,
    n_kv_heads=1,
    d_ff=7680,
    sliding_window=2048,
)


def griffin_blocks(c: Config, attention_every: int | None) -> list[Block]:
    """The residual blocks: RG-LRU mixers, with local attention every `attention_every` layers
    (None: never, which is Hawk)."""
    head_dim = c.d_model // c.n_heads
    rope = RotaryEmbedding(int(head_dim * c.rope_fraction), c.rope_theta)

    def mixer(i: int) -> nn.Module:
        if attention_every is not None and (i + 1) % attention_every == 0:
            return MultiHeadAttention(
                c.d_model,
                c.n_heads,
                n_kv_heads=c.n_kv_heads,
                qkv_bias=False,
                out_bias=True,
                causal=True,
                window=c.sliding_window,
                rope=rope,
            )
        return RecurrentBlock(
            c.d_model,
            lru_width=c.lru_width or c.d_model,
            n_heads=c.n_heads,
            conv_width=c.kernel_size,
            scan=c.scan,
        )

    return prenorm_blocks(c, mixer, mlp="geglu", mlp_bias=True)


@register(
    "griffin",
    family="attention",
    config=Config,
    summary="Griffin: RG-LRU recurrent blocks mixed with local multi-query attention (RecurrentGemma).",
    paper="Griffin: Mixing Gated Linear Recurrences with Local Attention for Efficient Language Models",
    year=2024,
    arxiv="2402.19427",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=3, n_heads=2, d_ff=48, sliding_window=8),
    presets={
        "recurrentgemma_2b": Preset(
            RECURRENTGEMMA_2B,
            params=2_682_862_080,
            source="google/recurrentgemma-2b config built as transformers RecurrentGemmaForCausalLM "
            "on the meta device (tied head counted once)",
        )
    },
    outputs="logits (B, T, vocab_size)",
)
class Griffin(CausalLM):
    def __init__(self, config: Config):
        super().__init__(config, griffin_blocks(config, config.attention_every))


# ---------------------------------------------- transformers checkpoint names -> ours (bestiary.llm.convert)
# RecurrentGemmaModel, `i` = layer. RecurrentGemma's RMSNorm multiplies by (1 + weight): add 1 when
# converting its norm weights. Its MLP's intermediate_size is twice our d_ff (it halves it).
HF_RECURRENTGEMMA_NAMES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.final_norm\.weight", r"norm.weight"),
    (r"model\.layers\.(\d+)\.temporal_pre_norm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"model\.layers\.(\d+)\.channel_pre_norm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.layers\.(\d+)\.mlp_block\.(gate|up|down)_proj\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"model\.layers\.(\d+)\.temporal_block\.([qkv])_proj\.weight", r"blocks.\1.mixer.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.temporal_block\.o_proj\.(weight|bias)", r"blocks.\1.mixer.out_proj.\2"),
    (
        r"model\.layers\.(\d+)\.temporal_block\.linear_(x|y|out)\.(weight|bias)",
        r"blocks.\1.mixer.linear_\2.\3",
    ),
    (r"model\.layers\.(\d+)\.temporal_block\.conv_1d\.(weight|bias)", r"blocks.\1.mixer.conv.conv.\2"),
    (r"model\.layers\.(\d+)\.temporal_block\.rg_lru\.recurrent_param", r"blocks.\1.mixer.rg_lru.a_param"),
    (
        r"model\.layers\.(\d+)\.temporal_block\.rg_lru\.(input|recurrent)_gate_(weight|bias)",
        r"blocks.\1.mixer.rg_lru.\2_gate.\3",
    ),
]
