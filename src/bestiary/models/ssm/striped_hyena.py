"""StripedHyena: Hyena layers striped with attention layers.

Paper / release: "StripedHyena: Moving Beyond Transformers with Hybrid Signal Processing Models"
(Poli, Wang, Massaroli, Quesnelle, Carlow, Nguyen & Thomas, Together AI, 2023; no arXiv paper). The
operator is from "Hyena Hierarchy" (Poli et al., 2023, arXiv:2302.10866); the modal filters and the
hybrid design were analysed in "Mechanistic Design and Scaling of Hybrid Architectures" (Poli et al.,
2024, arXiv:2403.17844).

A pure Hyena model is fast on long inputs but weaker at exact recall; a few attention layers fix
that. StripedHyena interleaves the two: most blocks are gated-convolution (Hyena, order 2) blocks,
and every `attn_every`-th block is a rotary multi-head attention block. Its long filters are in
*modal* form, h_t = sum_m R_m lambda_m^t, the impulse response of a diagonal recurrence, so a Hyena
block decodes with a fixed-size state (only the attention blocks keep a growing KV cache);
`long_filter="implicit"` swaps in the original Hyena FFN filters instead.

Simplified: real poles (the release uses complex poles and residues), one filter set per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from bestiary.layers.block import Block, make_mlp, transformer_block
from bestiary.layers.causal_lm import CausalLM
from bestiary.layers.hyena import HyenaOperator, ImplicitFilter, ModalFilter
from bestiary.layers.positions import RotaryEmbedding
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 32_000
    d_model: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    d_ff: int = 14_336
    mlp: str = "swiglu"
    max_seq_len: int = 32_768  # the implicit filters' length (modal filters have none)
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    dropout: float = 0.0
    tie_embeddings: bool = False
    attn_every: int = option(4, min=1)  # block i is attention when (i + 1) % attn_every == 0
    long_filter: str = option("modal", choices=("modal", "implicit"))
    kernel_size: int = 3  # the short conv on q, k, v
    d_state: int = 16  # modes (poles) of a modal filter, per channel


@register(
    "striped_hyena",
    family="ssm",
    config=Config,
    summary="StripedHyena: gated-convolution (Hyena, modal long filters) blocks striped with attention blocks.",
    paper="StripedHyena: Moving Beyond Transformers with Hybrid Signal Processing Models",
    year=2023,
    arxiv=None,
    input_kind="tokens",
    causal=True,
    tiny=dict(
        vocab_size=64, d_model=16, n_layers=2, n_heads=2, d_ff=32, max_seq_len=64, attn_every=2, d_state=4
    ),
    outputs="logits (B, T, vocab_size)",
)
class StripedHyena(CausalLM):
    def __init__(self, config: Config):
        c = config
        rope = RotaryEmbedding(c.d_model // c.n_heads, c.rope_theta)

        def hyena_block() -> nn.Module:
            if c.long_filter == "modal":
                long_filter: nn.Module = ModalFilter(c.d_model, c.d_state)
            else:
                long_filter = ImplicitFilter(c.d_model, c.max_seq_len)
            operator = HyenaOperator(c.d_model, [long_filter], c.kernel_size, c.dropout)
            mlp = make_mlp(c.mlp, c.d_model, c.d_ff, dropout=c.dropout)
            return Block(
                c.d_model, operator, mlp, norm=c.norm, norm_eps=c.norm_eps, norm_bias=False, dropout=c.dropout
            )

        def attention_block() -> nn.Module:
            return transformer_block(
                c.d_model,
                c.n_heads,
                c.d_ff,
                rope=rope,
                norm=c.norm,
                norm_eps=c.norm_eps,
                mlp=c.mlp,
                dropout=c.dropout,
            )

        self.attention_layers = [i for i in range(c.n_layers) if (i + 1) % c.attn_every == 0]
        blocks = [
            attention_block() if i in self.attention_layers else hyena_block() for i in range(c.n_layers)
        ]
        super().__init__(config, blocks)
