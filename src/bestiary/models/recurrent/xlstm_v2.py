"""xLSTM v2 (xLSTM 7B): an mLSTM-only language model re-engineered for fast, stable large-scale training.

Paper: "xLSTM 7B: A Recurrent LLM for Fast and Efficient Inference" (Beck et al., 2025, arXiv:2503.13427).

The cell is the mLSTM of "xLSTM: Extended Long Short-Term Memory" (arXiv:2405.04517: a gated
matrix memory with exponential input gates and a max stabiliser; `bestiary.layers.xlstm` has its
parallel, chunkwise and recurrent forms). What the 7B model changes is the block around it:

- a transformer-like block: pre-RMSNorm, the mLSTM layer, residual; pre-RMSNorm, a SwiGLU MLP,
  residual (the first xLSTM's up-projection block and causal convolution are gone);
- q and k at half the width of v (qk_dim_factor 0.5): a smaller matrix memory, faster kernels;
- plain dense projections for q, k, v and a sigmoid output gate (no block-diagonal maps, no skip);
- input and forget gate pre-activations soft-capped, 15 tanh(x / 15), and the output logits
  soft-capped at 30 (as Gemma 2), which removed the loss spikes of large-scale training;
- the input-gate bias starts at -10 (new inputs are written slowly at first);
- a per-head LayerNorm on the cell's output, RMSNorm everywhere else.

Simplified: no fused weights, no Triton kernels (the chunkwise form here is the same arithmetic).
Preset `xlstm_7b` is NX-AI/xLSTM-7b's config (d 4096, 32 blocks, 8 heads, vocab 50304, MLP 10944),
6,865,424,896 parameters as transformers' xLSTMForCausalLM built from it. `HF_XLSTM_NAMES` maps
transformers' tensor names onto ours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.state import RecurrentState
from bestiary.layers.xlstm import MLSTM_MODES, head_norm, run_mlstm
from bestiary.options import Rule, option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 384  # SwiGLU width (2.667 d_model rounded up to 64 in the reference)
    qk_dim_factor: float = option(0.5, gt=0.0, max=1.0)  # width of q and k relative to v (= d_model)
    gate_soft_cap: float = option(15.0, gt=0.0)  # gate pre-activations -> cap tanh(x / cap)
    logit_soft_cap: float = option(30.0, gt=0.0)  # the same for the output logits
    mode: str = option("chunkwise", choices=MLSTM_MODES)
    chunk_size: int = option(64, min=1)
    norm: str = option("rmsnorm", choices=("rmsnorm",))
    norm_eps: float = 1e-6
    tie_embeddings: bool = False
    max_seq_len: int | None = None


XLSTM_7B = dict(vocab_size=50304, d_model=4096, n_layers=32, n_heads=8, d_ff=10944)


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """cap tanh(x / cap): the identity near 0, smoothly bounded to (-cap, cap)."""
    return cap * torch.tanh(x / cap)


class mLSTMv2Mixer(nn.Module):  # noqa: N801 -- the paper's name
    """xLSTM 7B's mLSTM layer: dense q, k (qk_dim), v and output gate (d_model), soft-capped scalar
    gates per head, the mLSTM cell, a per-head LayerNorm, sigmoid output gate, out projection."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        qk_dim: int,
        *,
        gate_soft_cap: float,
        norm_eps: float,
        mode: str,
        chunk_size: int,
    ):
        super().__init__()
        self.d_model, self.n_heads, self.norm_eps = d_model, n_heads, norm_eps
        self.gate_soft_cap, self.mode, self.chunk_size = gate_soft_cap, mode, chunk_size
        self.q = nn.Linear(d_model, qk_dim, bias=False)
        self.k = nn.Linear(d_model, qk_dim, bias=False)
        self.v = nn.Linear(d_model, d_model, bias=False)
        self.output_gate = nn.Linear(d_model, d_model, bias=False)
        self.input_gate = nn.Linear(d_model, n_heads)
        self.forget_gate = nn.Linear(d_model, n_heads)
        self.norm_weight = nn.Parameter(torch.ones(d_model))
        self.out = nn.Linear(d_model, d_model, bias=False)

    @torch.no_grad()
    def init_weights(self) -> None:
        """The 7B init: gates start from their biases, input gate at -10 (exp(-10): writes start
        small), forget gate open (bias 3..6 across heads)."""
        for gate in (self.input_gate, self.forget_gate):
            nn.init.zeros_(gate.weight)
        self.input_gate.bias.fill_(-10.0)
        self.forget_gate.bias.copy_(torch.linspace(3.0, 6.0, self.n_heads))
        self.norm_weight.fill_(1.0)

    def init_cache(self, batch: int) -> RecurrentState:
        return RecurrentState(self, batch, ("C", "n", "m"))

    def forward(self, x: torch.Tensor, *, cache: RecurrentState | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        if cache is not None:
            cache.check(self, x)
        B, T, _ = x.shape
        H = self.n_heads
        q, k, v = (
            proj(x).view(B, T, H, -1).transpose(1, 2) for proj in (self.q, self.k, self.v)
        )  # (B, H, T, d)
        i = soft_cap(self.input_gate(x), self.gate_soft_cap).transpose(1, 2)  # (B, H, T)
        log_f = F.logsigmoid(soft_cap(self.forget_gate(x), self.gate_soft_cap)).transpose(1, 2)
        state = None if cache is None or cache["C"] is None else (cache["C"], cache["n"], cache["m"])
        h, state = run_mlstm(
            q, k, v, log_f, i, state, self.mode, self.chunk_size, with_cache=cache is not None
        )
        h = head_norm(h.transpose(1, 2), self.norm_weight, self.norm_eps)  # (B, T, d_model)
        if cache is not None:
            cache["C"], cache["n"], cache["m"] = state
            cache.length += T
        return self.out(torch.sigmoid(self.output_gate(x)) * h)


RULES = [
    Rule(
        lambda c: c.d_model % c.n_heads == 0 and (c.d_model * c.qk_dim_factor) % c.n_heads == 0,
        "d_model={d_model} and d_model * qk_dim_factor={qk_dim_factor} must be divisible "
        "by n_heads={n_heads}",
    )
]


@register(
    "xlstm_v2",
    family="recurrent",
    config=Config,
    summary="xLSTM 7B: mLSTM blocks with RMSNorm, SwiGLU, half-width q/k, soft-capped gates and logits.",
    paper="xLSTM 7B: A Recurrent LLM for Fast and Efficient Inference",
    year=2025,
    arxiv="2503.13427",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=2, d_ff=64, chunk_size=4),
    presets={
        "xlstm_7b": Preset(
            XLSTM_7B,
            params=6_865_424_896,
            source="NX-AI/xLSTM-7b config: transformers xLSTMForCausalLM on the meta device",
        )
    },
    rules=RULES,
    outputs="logits (B, T, vocab_size), soft-capped at logit_soft_cap",
)
class XLSTMv2(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c,
            lambda _: mLSTMv2Mixer(
                c.d_model,
                c.n_heads,
                round(c.d_model * c.qk_dim_factor),
                gate_soft_cap=c.gate_soft_cap,
                norm_eps=c.norm_eps,
                mode=c.mode,
                chunk_size=c.chunk_size,
            ),
        )
        super().__init__(config, blocks)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, d_model) -> soft-capped logits (B, T, vocab_size)."""
        return soft_cap(self.lm_head(features), self.config.logit_soft_cap)


# ------------------------------------------------- transformers xLSTMForCausalLM names -> ours
# (weight_mode="single"; theirs -> ours, regex rules applied in order)
HF_XLSTM_NAMES = [
    (r"^backbone\.embeddings\.", "tok_embed."),
    (r"^backbone\.blocks\.(\d+)\.norm_mlstm\.", r"blocks.\1.mixer_norm."),
    (r"^backbone\.blocks\.(\d+)\.norm_ffn\.", r"blocks.\1.mlp_norm."),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.(q|k|v)\.", r"blocks.\1.mixer.\2."),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.ogate_preact\.", r"blocks.\1.mixer.output_gate."),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.igate_preact\.", r"blocks.\1.mixer.input_gate."),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.fgate_preact\.", r"blocks.\1.mixer.forget_gate."),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.multihead_norm\.weight", r"blocks.\1.mixer.norm_weight"),
    (r"^backbone\.blocks\.(\d+)\.mlstm_layer\.out_proj\.", r"blocks.\1.mixer.out."),
    (r"^backbone\.blocks\.(\d+)\.ffn\.proj_up_gate\.", r"blocks.\1.mlp.gate."),
    (r"^backbone\.blocks\.(\d+)\.ffn\.proj_up\.", r"blocks.\1.mlp.up."),
    (r"^backbone\.blocks\.(\d+)\.ffn\.proj_down\.", r"blocks.\1.mlp.down."),
    (r"^backbone\.out_norm\.", "norm."),
    (r"^lm_head\.", "lm_head."),
]
