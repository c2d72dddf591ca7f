"""sLSTM: the xLSTM language model built from sLSTM blocks only (xLSTM[0:1]).

Paper: "xLSTM: Extended Long Short-Term Memory" (Beck et al., 2024, arXiv:2405.04517).

The sLSTM keeps the LSTM's scalar cells and its recurrent connections, and changes the gating:
an exponential input gate i_t = exp(i~_t) next to a sigmoid forget gate, a normaliser state
n_t = f_t n_{t-1} + i_t that the output is divided by (h_t = o_t c_t / n_t), and a stabiliser
m_t (the running max of the log gates) that keeps exp from overflowing without changing h. The
recurrent matrices are block-diagonal: each head mixes only its own cells ("memory mixing" within
a head). Because the gates read h_{t-1} through nonlinearities, the sLSTM cannot be parallelised
over time (no scan, no chunkwise form): it is recurrent in training too, which is the price of the
state tracking it can do. Each block is the paper's post-up-projection block: the cell at width
d_model, a per-head norm, then a gated GeLU MLP (`bestiary.layers.xlstm.slstm_block`).

Simplified: the model ends in a LayerNorm with a bias (the reference has none); plain PyTorch loop
instead of the fused CUDA kernel. No preset (the paper's sLSTM-only sizes are not published alone).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.xlstm import slstm_block
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4  # the block-diagonal recurrence: one (d/H x d/H) matrix per head and gate
    d_ff: int = 192  # the gated MLP after the cell (the reference: 1.3 d_model rounded up to 64)
    kernel_size: int = 4  # the causal convolution before the input and forget gates
    norm: str = option("layernorm", choices=("layernorm",))
    norm_eps: float = 1e-5
    tie_embeddings: bool = False
    max_seq_len: int | None = None


@register(
    "slstm",
    family="recurrent",
    config=Config,
    summary="xLSTM of sLSTM blocks: scalar LSTM cells with exponential gating and head-wise recurrence.",
    paper="xLSTM: Extended Long Short-Term Memory",
    year=2024,
    arxiv="2405.04517",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32),
    outputs="logits (B, T, vocab_size)",
)
class SLSTM(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = [
            slstm_block(
                c.d_model,
                c.n_heads,
                c.d_ff,
                kernel_size=c.kernel_size,
                norm_eps=c.norm_eps,
                layer_id=i,
                n_layers=c.n_layers,
            )
            for i in range(c.n_layers)
        ]
        super().__init__(config, blocks)
