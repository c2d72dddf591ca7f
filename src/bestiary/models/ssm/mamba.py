"""Mamba: a language model made of selective state-space layers, with no attention and no MLP.

Paper: "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Albert Gu & Tri Dao,
2023, arXiv:2312.00752).

Earlier SSMs (S4) apply the same linear recurrence to every input, which makes them a long
convolution but also blind to content: they cannot decide what to remember. Mamba makes the step
size dt and the matrices B, C functions of the current token, so each token chooses whether to
write itself into the state (large dt) or to let the state pass unchanged (small dt). The price is
that the convolution trick is gone; the recurrence h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t is
computed as a scan instead (the paper's fused, hardware-aware kernel). Decoding keeps a fixed-size
state (conv window + SSM state), so each new token costs the same, however long the context.

Each layer is x + MambaMixer(RMSNorm(x)) (`layers/mamba.py`); the stack sits in `CausalLM`
(embedding, final RMSNorm, tied head). Here the recurrence is computed by the plain loop
(`scan="sequential"`), the definition; `mamba_cumsum` and `mamba_hillis_steele` are the same model
with a parallel scan. Simplified: no fused CUDA kernel (the paper's speed comes from it), residuals
stay in the model's dtype (the reference keeps them in float32).

Preset `mamba_130m` (state-spaces/mamba-130m: d_model 768, 24 layers, N 16, vocab 50277 padded to
a multiple of 8 = 50280, tied embeddings): 129,135,360 parameters, as transformers'
MambaForCausalLM built from the same config.
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.mamba import SCANS, MambaLM, MambaLMConfig
from bestiary.options import option
from bestiary.registry import Preset, register


@dataclass(kw_only=True)
class Config(MambaLMConfig):
    scan: str = option("sequential", choices=SCANS)  # the loop: the recurrence as written


MAMBA_130M = dict(vocab_size=50280, d_model=768, n_layers=24, d_state=16, d_conv=4, expand=2)


@register(
    "mamba",
    family="ssm",
    config=Config,
    summary="Selective state-space LM: input-dependent dt, B, C; a recurrence instead of attention.",
    paper="Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
    year=2023,
    arxiv="2312.00752",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=4),
    presets={
        "mamba_130m": Preset(
            MAMBA_130M,
            params=129_135_360,
            source="state-spaces/mamba-130m config as transformers MambaForCausalLM on the meta device",
        )
    },
    outputs="logits (B, T, vocab_size)",
)
class Mamba(MambaLM):
    pass


# transformers' MambaForCausalLM tensor names -> ours (`i` = layer); the mixer's own tensors
# (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj) keep their names.
HF_MAMBA_NAMES = [
    (r"backbone\.embeddings\.weight", r"tok_embed.weight"),
    (r"backbone\.layers\.(\d+)\.norm\.weight", r"blocks.\1.mixer_norm.weight"),
    (r"backbone\.layers\.(\d+)\.mixer\.(.+)", r"blocks.\1.mixer.\2"),
    (r"backbone\.norm_f\.weight", r"norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
]
