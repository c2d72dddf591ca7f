"""NHA: Native Hybrid Attention, one softmax over a sliding window of tokens and compressed memory slots.

Paper: "Native Hybrid Attention for Efficient Sequence Modeling" (Jusen Du et al.,
2025; its arXiv id could not be checked offline, so the card leaves it empty).

Hybrid models usually stack linear-attention (RNN) layers and full-attention layers and hope the
two kinds of memory cooperate. NHA puts both in every layer and lets ONE softmax choose between
them:
- short-term memory: the keys and values of the last `window` tokens, exact (sliding-window
  attention);
- long-term memory: `n_slots` key/value slots per head, written by a gated linear RNN (as in
  Gated Slot Attention) with every token that leaves the window:
      K̃ <- diag(α) K̃ + (1 - α) kᵀ,   Ṽ <- diag(α) Ṽ + (1 - α) vᵀ,   α = sigmoid(W_α x) in (0, 1)^m
- the query scores both, o_t = softmax([q K̃ᵀ ; q K_winᵀ] / sqrt(d)) [Ṽ ; V_win]: no fusion
  weights, the softmax decides how much to trust each memory per token.
The window size is the inter-layer knob: window >= sequence length is full attention (the slots
stay empty and are not read), a small window makes a linear-cost, RNN-like layer.

Simplified: no RoPE (the slots carry no position; the window is short); the slot gates are plain
sigmoids; the slot RNN runs as a loop, not the paper's chunked kernel; the cache keeps every past
key (only the last `window` are read).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from bestiary.layers.attention_variants import KVExtrasCache
from bestiary.layers.block import prenorm_blocks
from bestiary.layers.causal_lm import CausalLM, check_sequence
from bestiary.layers.masks import sliding_window_mask
from bestiary.options import option
from bestiary.registry import register


class NHACache(KVExtrasCache):
    """Every past key and value, each token's slot gate (to write it into the slots when it leaves
    the window), and the slots themselves (fixed size)."""

    def __init__(self) -> None:
        super().__init__(("gates",))
        self.slots: tuple[torch.Tensor, torch.Tensor] | None = None  # K̃, Ṽ (B, H, m, Dh)

    def crop(self, length: int) -> None:
        raise TypeError("NHA's slots have absorbed the evicted tokens: they cannot forget positions")


class NativeHybridAttention(nn.Module):
    """Causal NHA, x (B, T, d_model) -> (B, T, d_model), with an `NHACache`."""

    def __init__(self, d_model: int, n_heads: int, *, window: int, n_slots: int):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model, self.n_heads, self.head_dim = d_model, n_heads, d_model // n_heads
        self.window, self.n_slots = window, n_slots
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.gate_proj = nn.Linear(d_model, n_heads * n_slots)  # α: how much each slot keeps
        self.out_proj = nn.Linear(d_model, d_model, bias=False)

    def init_cache(self, batch: int, **_: object) -> NHACache:
        return NHACache()

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, per head)

    def forward(self, x: torch.Tensor, *, cache: NHACache | None = None) -> torch.Tensor:
        check_sequence(x, self.d_model)
        B, T, _ = x.shape
        start = 0 if cache is None else cache.length
        q, k, v = self._heads(self.q_proj(x)), self._heads(self.k_proj(x)), self._heads(self.v_proj(x))
        gates = torch.sigmoid(self._heads(self.gate_proj(x)))  # (B, H, T, m)
        slot_k = slot_v = q.new_zeros(B, self.n_heads, self.n_slots, self.head_dim)
        if cache is not None:
            if cache.slots is not None:
                slot_k, slot_v = cache.slots
            k, v = cache.update(k, v)  # (B, H, Tk, Dh)
            gates = cache.update_extra("gates", gates)  # (B, H, Tk, m)
        # long-term memory: before query p reads it, the slots absorb every token j <= p - window
        absorbed = max(0, start - self.window)  # tokens the slots already hold
        slots_k, slots_v = [], []
        for p in range(start, start + T):
            while absorbed <= p - self.window:
                keep = gates[:, :, absorbed, :, None]  # (B, H, m, 1)
                slot_k = keep * slot_k + (1 - keep) * k[:, :, absorbed, None, :]  # (B, H, m, Dh)
                slot_v = keep * slot_v + (1 - keep) * v[:, :, absorbed, None, :]
                absorbed += 1
            slots_k.append(slot_k)
            slots_v.append(slot_v)
        if cache is not None:
            cache.slots = (slot_k, slot_v)
        slots_k, slots_v = torch.stack(slots_k, dim=2), torch.stack(slots_v, dim=2)  # (B, H, T, m, Dh)
        scale = 1.0 / math.sqrt(self.head_dim)
        slot_scores = torch.einsum("bhtd,bhtmd->bhtm", q, slots_k) * scale  # (B, H, T, m)
        positions = torch.arange(start, start + T, device=x.device)
        memory_empty = (positions < self.window)[:, None]  # (T, 1): nothing has left the window yet
        slot_scores = slot_scores.masked_fill(memory_empty, float("-inf"))
        # short-term memory: exact attention over the last `window` tokens
        window_scores = (q @ k.transpose(-2, -1) * scale).masked_fill(
            ~sliding_window_mask(T, k.shape[-2], self.window, x.device), float("-inf")
        )  # (B, H, T, Tk)
        weights = torch.cat([slot_scores, window_scores], dim=-1).softmax(dim=-1)  # one softmax over both
        slot_weights, window_weights = weights.split([self.n_slots, k.shape[-2]], dim=-1)
        out = torch.einsum("bhtm,bhtmd->bhtd", slot_weights, slots_v) + window_weights @ v  # (B, H, T, Dh)
        return self.out_proj(out.transpose(1, 2).reshape(B, T, self.d_model))


@dataclass(kw_only=True)
class Config:
    vocab_size: int = 256
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    d_ff: int = 352
    max_seq_len: int = 1024
    window: int = option(64, min=1)  # short-term memory: exact keys of the last `window` tokens
    n_slots: int = option(16, min=1)  # long-term memory: slots per head
    norm_eps: float = 1e-5
    tie_embeddings: bool = True


@register(
    "nha",
    family="attention",
    config=Config,
    summary="Native Hybrid Attention: one softmax over sliding-window tokens and gated-RNN memory slots.",
    paper="Native Hybrid Attention for Efficient Sequence Modeling",
    year=2025,
    arxiv="2510.07019",
    input_kind="tokens",
    causal=True,
    tiny=dict(vocab_size=64, d_model=32, n_layers=2, n_heads=4, d_ff=64, max_seq_len=64, window=4, n_slots=4),
    outputs="logits (B, T, vocab_size)",
)
class NHA(CausalLM):
    def __init__(self, config: Config):
        c = config
        blocks = prenorm_blocks(
            c, lambda _: NativeHybridAttention(c.d_model, c.n_heads, window=c.window, n_slots=c.n_slots)
        )
        super().__init__(config, blocks)
