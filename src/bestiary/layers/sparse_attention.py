"""Block-sparse attention: each query attends to a few selected blocks of keys instead of all of them.

Shared by MoBA (arXiv:2502.13189), NSA (arXiv:2502.11089), InfLLM-V2 (arXiv:2506.07900) and SPLA.
They differ in how they SCORE key blocks; the rest is the same machinery, here:

1. split the keys into blocks of `block_size` consecutive positions;
2. score every (query, key block) pair: `mean_pooled_block_scores` is MoBA's gate q · mean(K_block);
   NSA and InfLLM-V2 score blocks with the attention probabilities of compressed tokens;
3. `select_blocks`: per query, the `top_k` highest-scoring blocks among those not in its future;
   blocks a method always keeps (the query's own block, a few local ones, the first one) are
   forced in by giving them score +inf, so they count toward top_k;
4. attend over the selected blocks only. Two equivalent forms:
   - `sparse_attention`: a (Tq, Tk) boolean mask built from the selection, then ordinary masked
     attention. Readable, any per-query selection, but O(T²) like dense attention. The models use
     it (it makes cached decoding trivially equal to the full forward).
   - `block_sparse_attention`: queries in blocks too, each query block shares one selection, the
     selected key/value blocks are gathered and attended with a batched matmul: O(T · top_k ·
     block_size) time and memory, the point of the method (benchmarks/block_sparse_attention.py).
   A test checks they agree when every query of a block shares its selection.

Causality: a key block entirely after the query is never selectable; inside the query's own block
the ordinary causal mask applies (key position <= query position).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bestiary.layers.attention import scaled_dot_product_attention

__all__ = [
    "block_sparse_attention",
    "masked_softmax",
    "blocks_to_token_mask",
    "causal_block_candidates",
    "mean_pool_blocks",
    "mean_pooled_block_scores",
    "n_blocks",
    "select_blocks",
    "sparse_attention",
]


def n_blocks(t: int, block_size: int) -> int:
    """Number of blocks covering t positions (the last one may be partial)."""
    return -(-t // block_size)


def masked_softmax(scores: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """softmax over the kept entries of the last dim; a row that keeps nothing gets all zeros
    (a query with no complete compressed block yet), with finite gradients."""
    anything = keep.any(dim=-1, keepdim=True)
    scores = scores.masked_fill(~keep, float("-inf")).masked_fill(~anything, 0.0)  # empty rows: finite
    return scores.softmax(dim=-1) * keep


def mean_pool_blocks(k: torch.Tensor, block_size: int) -> torch.Tensor:
    """k (..., T, D) -> (..., n_blocks, D): the mean of each block's keys (a partial last block is
    averaged over the positions it has)."""
    T = k.shape[-2]
    pad = n_blocks(T, block_size) * block_size - T
    padded = torch.nn.functional.pad(k, (0, 0, 0, pad))  # (..., n_blocks * block_size, D)
    sums = padded.unflatten(-2, (-1, block_size)).sum(-2)  # (..., n_blocks, D)
    counts = torch.full((sums.shape[-2], 1), float(block_size), dtype=k.dtype, device=k.device)
    counts[-1] = block_size - pad
    return sums / counts


def mean_pooled_block_scores(q: torch.Tensor, k: torch.Tensor, block_size: int) -> torch.Tensor:
    """MoBA's gate: q (B, H, Tq, D), k (B, H, Tk, D) -> (B, H, Tq, n_blocks), q · mean(K_block)."""
    return q @ mean_pool_blocks(k, block_size).transpose(-2, -1)


def causal_block_candidates(
    q_positions: torch.Tensor, n_key_blocks: int, block_size: int, *, n_local: int = 1, initial: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which blocks each query may choose from, and which it always keeps.

    q_positions (Tq,) absolute positions. Returns (selectable, forced), each (Tq, n_key_blocks)
    bool: selectable = blocks that end before the query's own block; forced = the query's own block
    and the n_local - 1 before it (and block 0 if `initial`), never in the query's future."""
    own_block = (q_positions // block_size)[:, None]  # (Tq, 1)
    blocks = torch.arange(n_key_blocks, device=q_positions.device)[None, :]  # (1, n)
    not_future = blocks <= own_block
    forced = not_future & (blocks > own_block - n_local)
    if initial:
        forced = forced | (blocks == 0)
    return not_future & ~forced, forced


def select_blocks(
    scores: torch.Tensor, top_k: int, selectable: torch.Tensor, forced: torch.Tensor
) -> torch.Tensor:
    """scores (..., Tq, n) -> selected (..., Tq, n) bool: the forced blocks, then the highest-scoring
    selectable ones, top_k blocks in all (fewer when fewer are allowed)."""
    scores = scores.masked_fill(~(selectable | forced), float("-inf")).masked_fill(forced, float("inf"))
    top = scores.topk(min(top_k, scores.shape[-1]), dim=-1)  # (..., Tq, k)
    chosen = top.values > float("-inf")  # a -inf "winner" only fills a slot: not allowed
    return torch.zeros_like(scores, dtype=torch.bool).scatter(-1, top.indices, chosen)


def blocks_to_token_mask(
    selected: torch.Tensor, block_size: int, t_key: int, q_positions: torch.Tensor
) -> torch.Tensor:
    """selected (..., Tq, n_blocks) -> (..., Tq, Tk) bool: key j visible to query i when j's block
    is selected for i and j <= position of i (causal inside the query's own block)."""
    keep = selected.repeat_interleave(block_size, dim=-1)[..., :t_key]  # (..., Tq, Tk)
    causal = torch.arange(t_key, device=selected.device)[None, :] <= q_positions[:, None]  # (Tq, Tk)
    return keep & causal


def sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    selected: torch.Tensor,
    block_size: int,
    q_positions: torch.Tensor,
    *,
    scale: float | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Attention of q (B, H, Tq, D) over the selected key blocks of k, v (B, H, Tk, D).

    selected (B, H, Tq, n_blocks) bool; mask: an extra bool mask broadcastable to (B, H, Tq, Tk)
    (padding). The mask form: O(Tq · Tk), any per-query selection."""
    keep = blocks_to_token_mask(selected, block_size, k.shape[-2], q_positions)  # (B, H, Tq, Tk)
    if mask is not None:
        keep = keep & mask
    return scaled_dot_product_attention(q, k, v, keep, scale=scale)


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    block_index: torch.Tensor,
    block_size: int,
    *,
    scale: float | None = None,
) -> torch.Tensor:
    """Causal self-attention where query block i reads only key blocks block_index[..., i, :].

    q, k, v (B, H, T, D), T a multiple of block_size; block_index (B, H, n_blocks, top_k) long,
    -1 for an unused slot, never a block after the query block; each query block's own block must
    be among its selection (every method here forces it), so no query is left with nothing to
    attend to. Only the selected key/value blocks are gathered, so the cost is
    T · top_k · block_size per head instead of T².
    Returns (B, H, T, D)."""
    B, H, T, D = q.shape
    if T % block_size:
        raise ValueError(f"block_sparse_attention needs T={T} to be a multiple of block_size={block_size}")
    scale = D**-0.5 if scale is None else scale
    nb, top_k = T // block_size, block_index.shape[-1]
    valid = block_index >= 0  # (B, H, nb, top_k)
    # row of each selected block in the (B * H * nb) rows of all key blocks: index_select gathers
    # whole rows, and its backward (index_add) is as cheap as its forward
    head_offset = torch.arange(B * H, device=q.device).view(B, H, 1, 1) * nb
    rows = (block_index.clamp(min=0) + head_offset).flatten()  # (B * H * nb * top_k,)

    def gather(t: torch.Tensor) -> torch.Tensor:  # (B, H, T, D) -> (BH, nb, top_k * block_size, D)
        blocks = t.reshape(B * H * nb, block_size * D)  # one row per key block
        return blocks.index_select(0, rows).view(B * H, nb, top_k * block_size, D)

    k_sel, v_sel = gather(k), gather(v)
    q_blocks = q.reshape(B * H, nb, block_size, D)  # (BH, nb, bs, D)
    # which gathered keys each query sees: every key of a valid slot, except in the query's own
    # block, where only keys at or before it (causal). Selections hold no future blocks.
    own = block_index == torch.arange(nb, device=q.device).view(nb, 1)  # (B, H, nb, top_k)
    offsets = torch.arange(block_size, device=q.device)
    causal = offsets[None, :] <= offsets[:, None]  # (bs queries, bs keys)
    own_causal = ~own[..., None, :, None] | causal[:, None, :]  # (B, H, nb, bs, top_k, bs)
    visible = valid[..., None, :, None] & own_causal
    visible = visible.flatten(-2).flatten(0, 1)  # (BH, nb, bs, top_k * bs)
    # each query block against its own gathered keys: a batch of small dense attentions, which the
    # fused kernel runs without storing the probabilities (query blocks play the role of heads)
    out = F.scaled_dot_product_attention(q_blocks, k_sel, v_sel, attn_mask=visible, scale=scale)
    return out.view(B, H, T, D)
