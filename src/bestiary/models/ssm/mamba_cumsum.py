"""Mamba with its selective scan computed in closed form by cumulative products and sums.

Paper: "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Albert Gu & Tri Dao,
2023, arXiv:2312.00752); the model is exactly `mamba`, only the algorithm of the scan differs.

The recurrence h_t = a_t h_{t-1} + b_t (a_t = exp(dt_t A), b_t = dt_t B_t x_t) unrolls to
h_t = A_t (h_0 + sum_{s<=t} b_s / A_s) with A_t = a_1 ... a_t: one cumprod and one cumsum over time,
each a parallel prefix operation, instead of T dependent steps (`layers.scan.scan_cumsum`).
Cost: O(T) work like the loop, but a few full passes over the (B, T, d_inner, N) tensors; the
sequential dependency shrinks to one step per chunk.
Numerical caveat: A_t decays geometrically, so b_s / A_s overflows (and A_t underflows to 0) on long
stretches: in float32, once the summed decay -sum dt |A| passes ~87. So the scan runs chunk by
chunk, carrying h across chunks, and MambaMixer shortens the chunk below `chunk_size` when the
data's steepest per-step decay would cross half that budget within a chunk. Mamba-2's SSD avoids
the division altogether (differences of log-decays inside exp, `mamba_ssd`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.mamba import SCANS, MambaLM, MambaLMConfig
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config(MambaLMConfig):
    scan: str = option("cumsum", choices=SCANS)  # the closed form, chunk by chunk


@register(
    "mamba_cumsum",
    family="ssm",
    config=Config,
    summary="Mamba whose selective scan is the chunked closed form (cumprod + cumsum), not a loop.",
    paper="Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
    year=2023,
    arxiv="2312.00752",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=4, chunk_size=8),
    outputs="logits (B, T, vocab_size)",
)
class MambaCumsum(MambaLM):
    pass
