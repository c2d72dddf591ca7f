"""GQA: grouped-query attention, and the uptraining recipe that turns a multi-head checkpoint into it.

Paper: "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints"
(Ainslie, Lee-Thorp, de Jong, Zemlyanskiy, Lebrón, Sanghai, 2023, arXiv:2305.13245).

Decoding is memory-bound: each step reads every cached key and value. Multi-query attention (one
k/v head shared by all query heads, Shazeer 2019) shrinks that cache n_heads times but loses
quality. GQA sits between: the n_heads query heads are split into n_kv_heads groups and each
group shares one k/v head, so the cache is n_heads / n_kv_heads times smaller than MHA's.
n_kv_heads == n_heads is MHA, n_kv_heads == 1 is MQA.

The paper's second point is that an existing MHA model need not be trained again: mean-pool the
key and value projection heads of each group into one ("uptraining" init, Sec. 2.1, better than
keeping the first head or a random init) and continue training for ~5% of the original steps.
`GQA.from_mha` does that conversion.

Simplified: a Llama-style decoder (RoPE, RMSNorm, SwiGLU) rather than the paper's T5 encoder-decoder;
the uptraining itself is ordinary training and not included.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from bestiary.layers import MultiHeadAttention, RotaryEmbedding
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM
from bestiary.registry import register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 8
    n_kv_heads: int | None = 2  # None = n_heads (MHA); 1 = MQA; between = GQA
    head_dim: int | None = None  # None = d_model // n_heads
    d_ff: int = 352
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "gqa",
    family="attention",
    config=Config,
    summary="Grouped-query attention LM: query heads share k/v heads in groups; MHA checkpoints convert by mean-pooling.",
    paper="GQA: Training Generalized Multi-Query Transformer Models from Multi-Head Checkpoints",
    year=2023,
    arxiv="2305.13245",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64),
    outputs="logits (B, T, vocab_size)",
)
class GQA(CausalLM):
    def __init__(self, config: Config):
        c = config
        head_dim = c.head_dim or c.d_model // c.n_heads
        rope = RotaryEmbedding(head_dim, c.rope_theta)  # no parameters: one for every layer
        blocks = prenorm_blocks(
            c,
            lambda _: MultiHeadAttention(
                c.d_model,
                c.n_heads,
                n_kv_heads=c.n_kv_heads,
                head_dim=c.head_dim,
                bias=False,
                causal=True,
                rope=rope,
            ),
        )
        super().__init__(config, blocks)

    @classmethod
    def from_mha(cls, mha: GQA, n_kv_heads: int) -> GQA:
        """A GQA model with `n_kv_heads` groups, initialised from a multi-head one (Sec. 2.1).

        Every weight is copied, except each group's key and value heads, which become one head:
        the mean of the group's projection matrices."""
        if mha.config.n_kv_heads not in (None, mha.config.n_heads):
            raise ValueError(f"expected an MHA model, got n_kv_heads={mha.config.n_kv_heads}")
        weight = mha.lm_head.weight
        gqa = cls(replace(mha.config, n_kv_heads=n_kv_heads)).to(weight.device, weight.dtype)
        state = mha.state_dict()
        n_heads = mha.config.n_heads
        for name, weight in state.items():
            if name.endswith(("mixer.k_proj.weight", "mixer.v_proj.weight")):
                d_in = weight.shape[-1]
                heads = weight.view(n_kv_heads, n_heads // n_kv_heads, -1, d_in)  # (groups, per group, Dh, D)
                state[name] = heads.mean(dim=1).reshape(-1, d_in)  # (n_kv_heads * Dh, D)
        gqa.load_state_dict(state)
        return gqa


# transformers' LlamaForCausalLM attention names -> ours, `i` = layer (the rest of the layer as in
# decoder_only.HF_LLAMA_NAMES: norms -> blocks.i.mixer_norm / mlp_norm, mlp.* -> blocks.i.mlp.*).
HF_LLAMA_ATTENTION_NAMES = [
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.weight", r"blocks.\1.mixer.\2_proj.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"blocks.\1.mixer.out_proj.weight"),
]
