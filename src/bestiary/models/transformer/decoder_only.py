"""Decoder-only transformer language model: GPT-2 and Llama in one configurable file.

Papers: "Language Models are Unsupervised Multitask Learners" (GPT-2, Radford et al., 2019, no
arXiv) and "LLaMA: Open and Efficient Foundation Language Models" (Touvron et al., 2023,
arXiv:2302.13971), which swapped in RMSNorm, SwiGLU (arXiv:2002.05202) and RoPE (arXiv:2104.09864);
grouped-query attention from Ainslie et al. (2023, arXiv:2305.13245).

Each layer is the one `Block` of `bestiary.layers` (built by `transformer_block`): a causal
`MultiHeadAttention` mixer (RoPE, ALiBi or none; an optional sliding window) and an MLP, pre-norm. API (generation and the KV-cache
benchmarks build on it):

    model = bestiary.build("decoder_only", vocab_size=..., ...)   # or "smollm2_135m", "gpt2"
    logits = model(tokens)                                         # (B, T) long -> (B, T, vocab)
    cache = model.init_cache(batch)        # one KVCache per layer
    logits = model(prompt, cache=cache)    # positions 0..T-1
    logits = model(next_tokens, cache=cache)   # continues at position len(cache)

`padding_mask` (B, T_total) bool marks real tokens (True) vs padding (False) for batched,
left-padded prompts; T_total counts cached positions too.

Presets: `smollm2_135m` (Llama architecture of SmolLM2-135M: 30 layers, d 576, 9 heads / 3 kv
heads, d_ff 1536, vocab 49152, RoPE theta 100000, tied embeddings — 134,515,008 parameters, as
transformers' LlamaForCausalLM built from the published config) and `gpt2` (124M: learned
positions, LayerNorm, GELU-tanh MLP, biases, tied embeddings, fused q|k|v projection — 124,439,808
parameters as GPT2LMHeadModel). Weights from `transformers` map onto this module with the functions
in `bestiary.llm.convert` (one documented name mapping per family; GPT-2's is tensor for tensor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers import (
    Cache,
    LearnedPositions,
    RotaryEmbedding,
    SinusoidalPositions,
    check_shape,
    check_tokens,
    make_dropout,
    make_norm,
    transformer_block,
)
from bestiary.options import option
from bestiary.registry import Preset, register

POSITIONS = ("rope", "learned", "sinusoidal", "alibi", "none")


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = 2  # None = n_heads (MHA); 1 = MQA; between = GQA
    head_dim: int | None = None  # None = d_model // n_heads
    d_ff: int = 352  # FFN hidden size (about 8/3 d_model for SwiGLU, 4 d_model for GELU)
    max_seq_len: int = 512  # longest sequence (learned/sinusoidal positions need a table this long)
    dropout: float = 0.0
    position: str = option("rope", choices=POSITIONS)  # one of POSITIONS
    rope_theta: float = 10000.0
    rope_scaling_factor: float = 1.0  # > 1 stretches RoPE for longer contexts
    rope_scaling_type: str = option(
        "linear", choices=("linear", "ntk")
    )  # "linear" (position interpolation) or "ntk"
    norm: str = option("rmsnorm", choices=("rmsnorm", "layernorm"))  # "rmsnorm" | "layernorm"
    norm_eps: float = 1e-5
    mlp: str = "swiglu"  # "swiglu" or an activation name for a 2-layer FFN: "gelu", "gelu_tanh", "relu"
    bias: bool = False  # biases in the projections and LayerNorms (GPT-2: True; nanoGPT's bias=False: none)
    tie_embeddings: bool = True  # output head shares the token embedding matrix
    sliding_window: int | None = option(None, min=1)  # attend only to the last `sliding_window` positions
    fused_qkv: bool = False  # one mixer.qkv_proj (GPT-2's c_attn) instead of q_proj / k_proj / v_proj
    attn_impl: str = "sdpa"  # "sdpa" (PyTorch's fused kernel) or "manual" (the readable path; same math)


SMOLLM2_135M = dict(
    vocab_size=49152,
    d_model=576,
    n_layers=30,
    n_heads=9,
    n_kv_heads=3,
    d_ff=1536,
    max_seq_len=8192,
    rope_theta=100000.0,
    norm_eps=1e-5,
    tie_embeddings=True,
)
GPT2_124M = dict(
    vocab_size=50257,
    d_model=768,
    n_layers=12,
    n_heads=12,
    n_kv_heads=None,
    d_ff=3072,
    max_seq_len=1024,
    position="learned",
    norm="layernorm",
    norm_eps=1e-5,
    mlp="gelu_tanh",
    bias=True,
    tie_embeddings=True,
    fused_qkv=True,
)


@register(
    "decoder_only",
    family="transformer",
    config=Config,
    summary="GPT-style decoder-only transformer (GQA + RoPE + SwiGLU + RMSNorm by default; GPT-2 and Llama as presets).",
    paper="LLaMA: Open and Efficient Foundation Language Models",
    year=2023,
    arxiv="2302.13971",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, n_kv_heads=2, d_ff=64, max_seq_len=64),
    presets={
        "smollm2_135m": Preset(
            SMOLLM2_135M,
            params=134_515_008,
            source="SmolLM2-135M config (HuggingFaceTB) built as transformers LlamaForCausalLM on the meta device",
        ),
        "gpt2": Preset(
            GPT2_124M,
            params=124_439_808,
            source="GPT-2 small (124M): transformers GPT2LMHeadModel, tied head counted once",
        ),
    },
    outputs="logits (B, T, vocab_size)",
)
class DecoderOnly(nn.Module):
    def __init__(self, config: Config):
        super().__init__()
        if config.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {config.position!r}")
        if config.attn_impl not in ("sdpa", "manual"):
            raise ValueError(f"attn_impl must be 'sdpa' or 'manual', got {config.attn_impl!r}")
        self.config = c = config
        head_dim = c.head_dim or c.d_model // c.n_heads
        self.num_features = c.d_model
        self.tok_embed = nn.Embedding(c.vocab_size, c.d_model)
        self.pos_embed: nn.Module | None = None
        if c.position == "learned":
            self.pos_embed = LearnedPositions(c.max_seq_len, c.d_model)
        elif c.position == "sinusoidal":
            self.pos_embed = SinusoidalPositions(c.d_model, c.max_seq_len)
        rope = None
        if c.position == "rope":  # no parameters: one shared by every layer
            rope = RotaryEmbedding(head_dim, c.rope_theta, c.rope_scaling_factor, c.rope_scaling_type)
        self.drop = make_dropout(c.dropout)
        self.blocks = nn.ModuleList(
            transformer_block(
                c.d_model,
                c.n_heads,
                c.d_ff,
                n_kv_heads=c.n_kv_heads,
                head_dim=c.head_dim,
                window=c.sliding_window,
                rope=rope,
                alibi=c.position == "alibi",
                norm=c.norm,
                norm_eps=c.norm_eps,
                mlp=c.mlp,
                bias=c.bias,
                dropout=c.dropout,
                fused_qkv=c.fused_qkv,
                manual=c.attn_impl == "manual",
            )
            for _ in range(c.n_layers)
        )
        self.norm = make_norm(c.norm, c.d_model, c.norm_eps, c.bias)
        self.lm_head = nn.Linear(c.d_model, c.vocab_size, bias=False)
        if c.tie_embeddings:  # one matrix both reads and writes tokens (saves vocab * d_model params)
            self.lm_head.weight = self.tok_embed.weight
        self.apply(self._init_weights)
        # GPT-2 (Sec. 2.3): "scale the weights of residual layers at initialization by 1/sqrt(N)",
        # N = 2 * n_layers residual branches, so the sum of N branches keeps the variance of one
        for name, param in self.named_parameters():
            if name.endswith(("mixer.out_proj.weight", "mlp.down.weight")):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * c.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        # GPT-2 initialisation: N(0, 0.02) for every matrix, zero biases
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def tie_weights(self) -> None:
        """Make lm_head share tok_embed's matrix again (after loading weights with assign=True)."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.tok_embed.weight

    def init_cache(self, batch: int = 1) -> Cache:
        """An empty decoding cache: one KVCache per layer, and the count of positions seen."""
        return Cache([block.init_cache(batch) for block in self.blocks], owner=self, batch=batch)

    def forward_features(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) -> final-normed hidden states (B, T, d_model) (the input of lm_head)."""
        c = self.config
        check_tokens(tokens, c.vocab_size)
        start = 0 if cache is None else cache.length  # absolute position of tokens[:, 0]
        B, T = tokens.shape
        if cache is not None:
            cache.check(self, B)
        if start + T > c.max_seq_len:
            raise ValueError(f"positions up to {start + T} exceed max_seq_len={c.max_seq_len}")
        if padding_mask is not None:  # (B, T_total): True = a real token, cached positions included
            check_shape(padding_mask, "B T", name="padding_mask", B=B, T=start + T)
        x = self.tok_embed(tokens)  # (B, T, d_model)
        if self.pos_embed is not None:
            x = x + self.pos_embed(T, start)  # (T, d_model) broadcast over the batch
        x = self.drop(x)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache[i], mask=padding_mask)
        if cache is not None:
            cache.advance(T)
        return self.norm(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, d_model) -> logits (B, T, vocab_size)."""
        return self.lm_head(features)

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        cache: Cache | None = None,
        padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """tokens (B, T) long -> logits (B, T, vocab_size). See the module docstring."""
        return self.forward_head(self.forward_features(tokens, cache=cache, padding_mask=padding_mask))


# ------------------------------------------------ transformers checkpoint names -> ours (bestiary.llm.convert)
# LlamaForCausalLM, `i` = layer: model.layers.i.self_attn.{q,k,v,o}_proj -> blocks.i.mixer.{q,k,v,out}_proj;
# mlp.{gate,up,down}_proj -> blocks.i.mlp.{gate,up,down}; input_layernorm / post_attention_layernorm ->
# blocks.i.mixer_norm / mlp_norm; model.norm -> norm; lm_head -> lm_head (absent when tied).
HF_LLAMA_NAMES = [
    (r"model\.embed_tokens\.weight", r"tok_embed.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", r"blocks.\1.mixer.\2_proj.\3"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.(weight|bias)", r"blocks.\1.mixer.out_proj.\2"),
    (r"model\.layers\.(\d+)\.mlp\.(gate|up|down)_proj\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", r"blocks.\1.mlp_norm.weight"),
    (r"model\.norm\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
]

# GPT2LMHeadModel, one tensor for one tensor (the gpt2 preset has fused_qkv=True). GPT-2 stores its
# linear layers as `Conv1D`, weight (in, out): bestiary.llm.convert transposes those.
HF_GPT2_NAMES = {
    r"wte\.weight": "tok_embed.weight",
    r"wpe\.weight": "pos_embed.weight",
    r"h\.(\d+)\.ln_1\.(weight|bias)": r"blocks.\1.mixer_norm.\2",
    r"h\.(\d+)\.ln_2\.(weight|bias)": r"blocks.\1.mlp_norm.\2",
    r"h\.(\d+)\.attn\.c_attn\.(weight|bias)": r"blocks.\1.mixer.qkv_proj.\2",
    r"h\.(\d+)\.attn\.c_proj\.(weight|bias)": r"blocks.\1.mixer.out_proj.\2",
    r"h\.(\d+)\.mlp\.c_fc\.(weight|bias)": r"blocks.\1.mlp.up.\2",
    r"h\.(\d+)\.mlp\.c_proj\.(weight|bias)": r"blocks.\1.mlp.down.\2",
    r"ln_f\.(weight|bias)": r"norm.\1",
    r"lm_head\.weight": "lm_head.weight",
}
