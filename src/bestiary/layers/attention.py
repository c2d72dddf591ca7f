"""Softmax attention as a token mixer: multi-head self-attention (MHA, MQA, GQA) and cross-attention.

"Attention Is All You Need" (Vaswani et al., 2017, arXiv:1706.03762); multi-query attention from
"Fast Transformer Decoding: One Write-Head is All You Need" (Shazeer, 2019, arXiv:1911.02150);
grouped-query attention from "GQA: Training Generalized Multi-Query Transformer Models"
(Ainslie et al., 2023, arXiv:2305.13245).

`MultiHeadAttention` follows the token-mixer contract of `bestiary.layers.mixer`:

    attn = MultiHeadAttention(d_model, n_heads, causal=True, rope=RotaryEmbedding(head_dim))
    y = attn(x)                              # (B, T, D) -> (B, T, D)
    cache = attn.init_cache(batch)           # a KVCache
    y = attn(x_prompt, cache=cache); y = attn(x_next, cache=cache)   # same outputs, incrementally

Everything about positions is set when the layer is built, never passed per call: `causal`, a
sliding `window`, a `rope` (a `RotaryEmbedding`, or any callable (x, positions) -> x applied to
q and k at their absolute positions), `alibi` (the per-head distance penalty), or a `score_bias`
callable (t_query, t_key, start_pos) -> additive score bias (T5's learned relative buckets). The
only per-call extra is `mask`, because padding belongs to the data: (B, T_keys) with True for real
tokens, or any boolean mask broadcastable to (B, H, T_query, T_keys).

Two paths compute the same thing: `F.scaled_dot_product_attention` (fast, fused) and a readable
manual one (`manual=True` at construction), which is what a learner should read first. Tests check
they agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bestiary.layers.checks import ShapeError, check_shape
from bestiary.layers.kv_cache import KVCache
from bestiary.layers.masks import causal_mask, combine_masks, padding_mask, sliding_window_mask
from bestiary.layers.positions import RotaryEmbedding, alibi_bias, apply_rotary

__all__ = ["CrossAttention", "MultiHeadAttention", "causal_mask", "scaled_dot_product_attention"]


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
    dropout_p: float = 0.0,
    manual: bool = False,
    *,
    scale: float | None = None,
    attn_bias: torch.Tensor | None = None,
    sinks: torch.Tensor | None = None,
) -> torch.Tensor:
    """softmax(q kᵀ * scale + attn_bias) v over the last two dims; scale defaults to 1/sqrt(d).

    `sinks` (H,): a learned logit per head that joins every row's softmax as one more "key" whose
    value is zero (GPT-OSS's attention sinks): a head can put weight there to attend to nothing,
    instead of dumping it on the first token. It runs the manual path.

    q (B, H, Tq, D), k and v (B, H_kv, Tk, D) with H a multiple of H_kv (grouped-query). `mask` is boolean (True = may attend), broadcastable to
    (B, H, Tq, Tk). `is_causal` lets query i see keys <= i (aligned to the end when Tk > Tq, as in
    generation with a cache). A query row that may see no key at all (a padding position) is
    allowed to see every key instead, so the output stays finite; such rows are padding and
    should be ignored by the caller.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    t_query, t_key = q.shape[-2], k.shape[-2]
    n_heads, n_kv_heads = q.shape[1], k.shape[1]
    if n_heads % n_kv_heads:
        raise ValueError(f"q has {n_heads} heads, not a multiple of the {n_kv_heads} key/value heads")
    gqa = n_kv_heads != n_heads
    manual = manual or sinks is not None  # the fused kernels have no sink column
    if gqa and manual:  # each group of query heads shares one k/v head: repeat them explicitly
        k = k.repeat_interleave(n_heads // n_kv_heads, dim=1)  # (B, H, Tk, D)
        v = v.repeat_interleave(n_heads // n_kv_heads, dim=1)
    if is_causal and t_query == 1:  # one new query at the end sees every key: nothing to mask
        is_causal = False
    if not manual and is_causal and mask is None and attn_bias is None and t_query == t_key:
        # the fused kernels take is_causal directly (no mask tensor): the fast path for training
        return F.scaled_dot_product_attention(
            q, k, v, dropout_p=dropout_p, is_causal=True, scale=scale, enable_gqa=gqa
        )
    if is_causal:
        mask = combine_masks(mask, causal_mask(t_query, t_key, q.device))
    if mask is not None:
        mask = mask.bool()
        mask = mask | ~mask.any(dim=-1, keepdim=True)  # fully masked rows -> attend all (finite output)
    if not manual:
        attn_mask = mask
        if attn_bias is not None:  # SDPA adds a float mask to the scores
            attn_mask = attn_bias.to(q.dtype)
            if mask is not None:
                attn_mask = attn_mask.masked_fill(~mask, float("-inf"))
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, scale=scale, enable_gqa=gqa
        )
    scores = q @ k.transpose(-2, -1) * scale  # (B, H, Tq, Tk): how well query i matches key j
    if attn_bias is not None:
        scores = scores + attn_bias
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # exp(-inf) = 0: no weight on hidden keys
    if sinks is not None:  # one more column per row: the sink's logit, a key with a zero value
        sink_column = sinks.view(1, -1, 1, 1).expand(scores.shape[0], -1, t_query, 1).to(scores.dtype)
        weights = torch.cat([scores, sink_column], dim=-1).softmax(dim=-1)[..., :-1]  # rows sum to <= 1
    else:
        weights = scores.softmax(dim=-1)  # each row sums to 1
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v  # (B, H, Tq, D): weighted average of the values


def check_attention_mask(mask: torch.Tensor, batch: int, n_heads: int, t_query: int, t_key: int) -> None:
    """A mask is boolean or 0/1 integers (True / 1 = may attend), either (B, T_keys) padding or 4-D,
    broadcastable to (B, H, T_query, T_keys). A floating-point mask is refused: an additive mask
    (0 / -inf, the convention of some libraries) read as keep / drop would invert it."""
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(
            f"mask must be boolean (True = may attend), got {mask.dtype}; an additive float mask "
            "(0 = keep, -inf = drop) converts with `mask == 0`"
        )
    if mask.dim() == 2:
        if tuple(mask.shape) != (batch, t_key):
            raise ShapeError(
                f"a 2-D mask is padding of shape (B, T_keys) = ({batch}, {t_key}), got {tuple(mask.shape)}"
            )
        return
    expected = (batch, n_heads, t_query, t_key)
    if mask.dim() != 4 or any(m not in (1, e) for m, e in zip(mask.shape, expected)):
        raise ShapeError(
            f"mask must be (B, T_keys) padding or broadcastable to (B, H, T_query, T_keys) = {expected}, "
            f"got {tuple(mask.shape)}"
        )


class MultiHeadAttention(nn.Module):
    """Self-attention with `n_heads` query heads sharing `n_kv_heads` key/value heads.

    n_kv_heads == n_heads is MHA, 1 is MQA, anything between is GQA.
    x (B, T, d_model) -> (B, T, d_model).
    `scale` overrides 1/sqrt(head_dim) (T5 uses 1.0: its init absorbs the scaling).
    `qkv_bias` (default: `bias`) is one bool for q, k and v, or three (DINOv3's k has none);
    `out_bias` (default: `bias`) is the output projection's (ViT keeps it when q/k/v have none).
    `fused_qkv=True` keeps q, k and v in one `qkv_proj` Linear, rows stacked q | k | v (GPT-2's
    `c_attn`, GPT-NeoX, Phi); otherwise three, `q_proj` / `k_proj` / `v_proj` (Llama, BERT, T5).
    Same math either way; the choice only decides how the checkpoint names them.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_kv_heads: int | None = None,
        head_dim: int | None = None,
        bias: bool = True,
        qkv_bias: bool | tuple[bool, bool, bool] | None = None,
        out_bias: bool | None = None,
        dropout: float = 0.0,
        causal: bool = False,
        window: int | None = None,
        rope: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        alibi: bool = False,
        score_bias: Callable[[int, int, int], torch.Tensor] | None = None,
        scale: float | None = None,
        fused_qkv: bool = False,
        manual: bool = False,
        sinks: bool = False,
    ):
        super().__init__()
        n_kv_heads = n_kv_heads or n_heads
        if head_dim is None:
            if d_model % n_heads:
                raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
            head_dim = d_model // n_heads
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}")
        if window is not None and (window < 1 or not causal):
            raise ValueError(
                f"a sliding window must be >= 1 and causal, got window={window}, causal={causal}"
            )
        self.d_model, self.n_heads, self.n_kv_heads, self.head_dim = d_model, n_heads, n_kv_heads, head_dim
        self.dropout = dropout
        self.causal, self.window, self.alibi = causal, window, alibi
        self.rope = rope  # a RotaryEmbedding has no parameters: sharing one across layers is free
        # a callable, not a submodule: T5 shares one bias table across all layers of a stack, and
        # the stack owns it (a bound method keeps it out of this layer's state_dict)
        self.score_bias = score_bias
        self.scale = scale
        self.fused_qkv = fused_qkv
        self.manual = manual
        q_bias, k_bias, v_bias = (
            (bias,) * 3 if qkv_bias is None else ((qkv_bias,) * 3 if isinstance(qkv_bias, bool) else qkv_bias)
        )
        if fused_qkv:
            if not q_bias == k_bias == v_bias:
                raise ValueError("fused_qkv needs one bias setting for q, k and v")
            self.qkv_proj = nn.Linear(d_model, (n_heads + 2 * n_kv_heads) * head_dim, bias=q_bias)
        else:
            self.q_proj = nn.Linear(d_model, n_heads * head_dim, bias=q_bias)
            self.k_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=k_bias)
            self.v_proj = nn.Linear(d_model, n_kv_heads * head_dim, bias=v_bias)
        self.out_proj = nn.Linear(n_heads * head_dim, d_model, bias=bias if out_bias is None else out_bias)
        # GPT-OSS's attention sinks: one learned logit per head (see scaled_dot_product_attention)
        self.sinks = nn.Parameter(torch.zeros(n_heads)) if sinks else None

    def init_cache(self, batch: int, **_: object) -> KVCache:
        """An empty KVCache (it sizes itself from the first keys it stores)."""
        if not self.causal:
            raise ValueError(
                "a bidirectional attention layer cannot decode token by token: every position "
                "sees the future (build it with causal=True)"
            )
        return KVCache()

    def _split_heads(self, t: torch.Tensor, n_heads: int) -> torch.Tensor:
        B, T, _ = t.shape
        return t.view(B, T, n_heads, self.head_dim).transpose(1, 2)  # (B, heads, T, Dh)

    def _project_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """q, k, v (B, T, heads * Dh) from x."""
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        if self.fused_qkv:
            return self.qkv_proj(x).split([q_size, kv_size, kv_size], dim=-1)
        projections = (self.q_proj, self.k_proj, self.v_proj)
        if torch.is_grad_enabled() and all(type(p) is nn.Linear for p in projections):
            # Training: one matmul against the three stacked weight matrices is the same math as
            # three, but faster (and its backward is one matmul instead of three plus a sum).
            # Without gradients (generation, one token at a time) stacking would copy every
            # weight per call, costing as much as the matmul itself, so we keep three there.
            # Only plain Linear layers are stacked: a wrapped one (an adapter) runs its own forward.
            weight = torch.cat([p.weight for p in projections])
            bias = None
            if any(p.bias is not None for p in projections):
                bias = torch.cat(
                    [p.bias if p.bias is not None else x.new_zeros(p.out_features) for p in projections]
                )
            return F.linear(x, weight, bias).split([q_size, kv_size, kv_size], dim=-1)
        return self.q_proj(x), self.k_proj(x), self.v_proj(x)

    def _rotate(self, t: torch.Tensor, start: int) -> torch.Tensor:
        positions = torch.arange(start, start + t.shape[-2], device=t.device)
        return self.rope(t, positions)

    def _attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, start: int
    ) -> torch.Tensor:
        """Heads (B, H, T, Dh) and (B, Hkv, Tk, Dh) -> output (B, T, d_model)."""
        B, _, T, _ = q.shape
        t_key = k.shape[-2]
        if mask is not None:
            check_attention_mask(mask, B, self.n_heads, T, t_key)
        if mask is not None and mask.dim() == 2:  # (B, Tk) padding: True = a real token
            mask = padding_mask(mask)  # (B, 1, 1, Tk)
        bias = None
        if self.alibi:
            bias = alibi_bias(self.n_heads, T, t_key, q.device)  # (H, T, Tk)
        if self.score_bias is not None:
            extra = self.score_bias(T, t_key, start)  # (1, H, T, Tk)
            bias = extra if bias is None else bias + extra
        is_causal = self.causal
        if self.window is not None:  # sliding window: also causal, so it replaces is_causal
            mask = combine_masks(mask, sliding_window_mask(T, t_key, self.window, q.device))
            is_causal = False
        # with n_kv_heads < n_heads, k and v stay (B, Hkv, Tk, Dh): each group of n_heads / n_kv_heads
        # query heads shares one k/v head (SDPA's enable_gqa; the manual path repeats them)
        dropout_p = self.dropout if self.training else 0.0
        out = scaled_dot_product_attention(
            q,
            k,
            v,
            mask,
            is_causal,
            dropout_p,
            self.manual,
            scale=self.scale,
            attn_bias=bias,
            sinks=self.sinks,
        )  # (B, H, T, Dh)
        out = out.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim)  # (B, T, H*Dh)
        return self.out_proj(out)

    def forward(
        self, x: torch.Tensor, *, cache: KVCache | None = None, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, d_model) -> (B, T, d_model). With `cache`, x holds the positions after the
        cached ones: new keys and values are appended and attention runs over all of them."""
        check_shape(x, "B T D", name="x", D=self.d_model)
        start = 0 if cache is None else cache.length  # absolute position of x[:, 0]
        q, k, v = self._project_qkv(x)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k = self._split_heads(k, self.n_kv_heads)  # (B, Hkv, T, Dh)
        v = self._split_heads(v, self.n_kv_heads)  # (B, Hkv, T, Dh)
        if self.rope is not None:  # rotate by absolute position; cached keys were rotated when stored
            if isinstance(self.rope, RotaryEmbedding):  # one cos/sin table for q and k
                cos, sin = self.rope.cos_sin(torch.arange(start, start + x.shape[1], device=x.device))
                q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
            else:
                q, k = self._rotate(q, start), self._rotate(k, start)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, Hkv, start + T, Dh)
        return self._attend(q, k, v, mask, start)


class CrossAttention(MultiHeadAttention):
    """Queries from x (B, T, d_model), keys and values from a `context` (B, S, d_model).

    The decoder of an encoder-decoder reads the encoder's output this way. With `rope`, the queries
    are rotated by their positions 0..T-1 and the context keys by theirs, 0..S-1 (two sequences
    on one position axis, as in the Free Transformer); `causal=True` then lets query i see context
    positions <= i.
    """

    def _project_qkv_cross(
        self, x: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q_size, kv_size = self.n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        if self.fused_qkv:  # the q rows read x, the k and v rows read the context
            weight, bias = self.qkv_proj.weight, self.qkv_proj.bias
            q = F.linear(x, weight[:q_size], None if bias is None else bias[:q_size])
            kv = F.linear(context, weight[q_size:], None if bias is None else bias[q_size:])
            return (q, *kv.split([kv_size, kv_size], dim=-1))
        return self.q_proj(x), self.k_proj(context), self.v_proj(context)

    def init_cache(self, batch: int, **_: object) -> KVCache:
        raise ValueError("cross-attention reads a fixed context: it has no per-token cache")

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, context: torch.Tensor, *, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """x (B, T, d_model), context (B, S, d_model), mask: context padding (B, S) -> (B, T, d_model)."""
        check_shape(x, "B T D", name="x", D=self.d_model)
        check_shape(context, "B S D", name="context", B=x.shape[0], D=self.d_model)
        q, k, v = self._project_qkv_cross(x, context)
        q = self._split_heads(q, self.n_heads)  # (B, H, T, Dh)
        k = self._split_heads(k, self.n_kv_heads)  # (B, Hkv, S, Dh)
        v = self._split_heads(v, self.n_kv_heads)  # (B, Hkv, S, Dh)
        if self.rope is not None:
            q, k = self._rotate(q, 0), self._rotate(k, 0)
        return self._attend(q, k, v, mask, 0)
