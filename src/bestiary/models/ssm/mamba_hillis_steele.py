"""Mamba with its selective scan computed by the Hillis-Steele parallel prefix scan.

Papers: "Mamba: Linear-Time Sequence Modeling with Selective State Spaces" (Albert Gu & Tri Dao,
2023, arXiv:2312.00752); the scan from "Data Parallel Algorithms" (W. Daniel Hillis & Guy L.
Steele, 1986, no arXiv). The model is exactly `mamba`; only the algorithm of the scan differs.

One step of h_t = a_t h_{t-1} + b_t is the affine map (a_t, b_t), and two steps compose into one:
(a2, b2) o (a1, b1) = (a2 a1, a2 b1 + b2). Composition is associative, so all prefixes can be
computed in ceil(log2 T) rounds: in round k every position t combines itself with position
t - 2^k, and after the last round b_t holds h_t (`layers.scan.scan_hillis_steele`).
Cost: depth log2 T instead of T (what a GPU with T lanes wants), but O(T log T) work: each round
rewrites the whole (B, T, d_inner, N) tensor, so on a few CPU cores it is slower than the loop
(benchmarks/selective_scan.py). Numerically it only multiplies decays in (0, 1) and adds, so unlike
the cumsum form it never divides and needs no chunking. (The Mamba paper's kernel uses a
work-efficient Blelloch-style scan inside fast on-chip memory instead.)
"""

from __future__ import annotations

from dataclasses import dataclass

from bestiary.layers.mamba import SCANS, MambaLM, MambaLMConfig
from bestiary.options import option
from bestiary.registry import register


@dataclass(kw_only=True)
class Config(MambaLMConfig):
    scan: str = option("hillis_steele", choices=SCANS)  # log2(T) rounds of pairwise composition


@register(
    "mamba_hillis_steele",
    family="ssm",
    config=Config,
    summary="Mamba whose selective scan is the Hillis-Steele log-depth parallel prefix scan.",
    paper="Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
    year=2023,
    arxiv="2312.00752",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=16, n_layers=2, d_state=4),
    outputs="logits (B, T, vocab_size)",
)
class MambaHillisSteele(MambaLM):
    pass
