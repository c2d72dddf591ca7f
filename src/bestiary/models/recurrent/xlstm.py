"""xLSTM: a residual stack of mLSTM and sLSTM blocks in a chosen ratio, e.g. xLSTM[7:1].

Paper: "xLSTM: Extended Long Short-Term Memory" (Beck et al., 2024, arXiv:2405.04517).

The paper extends the LSTM in two ways and stacks both: the mLSTM (a gated matrix memory, fully
parallelisable, the workhorse) and the sLSTM (scalar cells with exponential gating and head-wise
recurrent connections, sequential but able to track state). xLSTM[a:b] names the ratio of mLSTM to
sLSTM blocks; the paper's language models use xLSTM[7:1] (one sLSTM block in eight) and xLSTM[1:0].
`slstm_at` lists the positions of the sLSTM blocks (the reference package's `slstm_at`). The mLSTM
block is pre-up-projection (its own 2x expansion, no MLP), the sLSTM block post-up-projection (the
cell, then a gated GeLU MLP); both are pre-LayerNorm residual blocks (`bestiary.layers.xlstm`).

Simplified: the model ends in a LayerNorm with a bias (the reference has none). No preset: the
paper's 125M-1.3B models use a GPT-2 vocabulary and sizes the reference does not publish as a
config, so no parameter count could be checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.xlstm import MLSTM_MODES, mlstm_block, slstm_block
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 8
    n_heads: int = 4  # heads of both cells
    d_ff: int = 192  # the sLSTM blocks' gated MLP (1.3 d_model rounded up to 64 in the reference)
    slstm_at: tuple[int, ...] = option((3,), min=0)  # block indices that are sLSTM; the rest are mLSTM
    qkv_block_size: int = option(4, min=1)  # mLSTM q/k/v projections: block-diagonal, blocks this size
    kernel_size: int = 4  # the causal convolutions in both blocks
    mode: str = option("parallel", choices=MLSTM_MODES)  # how the mLSTM blocks run a whole sequence
    chunk_size: int = option(64, min=1)
    norm: str = option("layernorm", choices=("layernorm",))
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_seq_len: int | None = None


RULES = [
    Rule(
        lambda c: all(i < c.n_layers for i in c.slstm_at),
        "slstm_at={slstm_at} names a block beyond n_layers={n_layers}",
    ),
    Rule(
        lambda c: (2 * c.d_model) % c.n_heads == 0 and (2 * c.d_model) % c.qkv_block_size == 0,
        "2 d_model={d_model} (the mLSTM's inner width) must be divisible by n_heads={n_heads} "
        "and qkv_block_size={qkv_block_size}",
    ),
]


@register(
    "xlstm",
    family="recurrent",
    config=Config,
    summary="xLSTM: a residual stack of mLSTM and sLSTM blocks in a chosen ratio, e.g. xLSTM[7:1].",
    paper="xLSTM: Extended Long Short-Term Memory",
    year=2024,
    arxiv="2405.04517",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, slstm_at=(1,), chunk_size=4),
    rules=RULES,
    outputs="logits (B, T, vocab_size)",
)
class XLSTM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = []
        for i in range(c.n_layers):
            if i in c.slstm_at:
                block = slstm_block(
                    c.d_model,
                    c.n_heads,
                    c.d_ff,
                    kernel_size=c.kernel_size,
                    norm_eps=c.norm_eps,
                    layer_id=i,
                    n_layers=c.n_layers,
                )
            else:
                block = mlstm_block(
                    c.d_model,
                    c.n_heads,
                    qkv_block_size=c.qkv_block_size,
                    kernel_size=c.kernel_size,
                    mode=c.mode,
                    chunk_size=c.chunk_size,
                    norm_eps=c.norm_eps,
                )
            blocks.append(block)
        super().__init__(config, blocks)
