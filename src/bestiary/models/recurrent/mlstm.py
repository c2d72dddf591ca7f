"""mLSTM: the xLSTM language model built from mLSTM blocks only (xLSTM[1:0]).

Paper: "xLSTM: Extended Long Short-Term Memory" (Beck et al., 2024, arXiv:2405.04517).

The mLSTM replaces the LSTM's scalar cell with a matrix memory per head, written like a fast-weight
/ linear-attention state: C_t = f_t C_{t-1} + i_t k_t v_t^T, read with a query, h_t = C_t^T q_t
divided by the normaliser max(|n_t . q_t|, 1). The input gate is exponential (stabilised by a
running max m_t), so a new key can overwrite an old association. Because no gate reads h_{t-1},
the layer trains in parallel (a masked attention with a log-gate decay matrix) or chunk by chunk,
and decodes as an RNN with a fixed-size state: `mode` picks the form, all three are tested equal.
Each block is the paper's pre-up-projection block (`bestiary.layers.xlstm.mLSTMMixer`): up-project
to 2 D, causal convolution, block-diagonal q/k/v, the cell, a per-head norm, a SiLU output gate.

Simplified: the model ends in a LayerNorm with a bias (the reference has none); no weight decay
groups or embedding dropout. The paper's sizes differ in vocabulary and context; no preset.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.xlstm import MLSTM_MODES, mlstm_block
from bestiary.options import Rule, option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4  # mLSTM heads over the inner width 2 d_model
    qkv_block_size: int = option(4, min=1)  # q/k/v projections are block-diagonal with blocks this size
    kernel_size: int = 4  # the causal convolution before q and k
    mode: str = option("parallel", choices=MLSTM_MODES)
    chunk_size: int = option(64, min=1)  # positions per chunk in mode="chunkwise"
    norm: str = option("layernorm", choices=("layernorm",))
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_seq_len: int | None = None


RULES = [
    Rule(
        lambda c: (2 * c.d_model) % c.n_heads == 0 and (2 * c.d_model) % c.qkv_block_size == 0,
        "2 d_model={d_model} (the inner width) must be divisible by n_heads={n_heads} "
        "and qkv_block_size={qkv_block_size}",
    )
]


@register(
    "mlstm",
    family="recurrent",
    config=Config,
    summary="xLSTM of mLSTM blocks: a gated matrix memory with exponential input gates.",
    paper="xLSTM: Extended Long Short-Term Memory",
    year=2024,
    arxiv="2405.04517",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, chunk_size=4),
    rules=RULES,
    outputs="logits (B, T, vocab_size)",
)
class MLSTM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = [
            mlstm_block(
                c.d_model,
                c.n_heads,
                qkv_block_size=c.qkv_block_size,
                kernel_size=c.kernel_size,
                mode=c.mode,
                chunk_size=c.chunk_size,
                norm_eps=c.norm_eps,
            )
            for _ in range(c.n_layers)
        ]
        super().__init__(config, blocks)
