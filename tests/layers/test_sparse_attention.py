"""Block-sparse attention machinery: block pooling, top-k selection, and the two forms of attention
over selected blocks (token mask, gathered blocks) against each other and against dense attention."""

import pytest
import torch
import torch.nn.functional as F

from bestiary.layers.sparse_attention import (
    block_sparse_attention,
    causal_block_candidates,
    mean_pool_blocks,
    select_blocks,
    sparse_attention,
)


def _qkv(T=12, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, D, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def test_mean_pool_blocks_averages_each_block_including_a_partial_last_one():
    k = torch.randn(1, 1, 7, 4, dtype=torch.float64)
    pooled = mean_pool_blocks(k, 3)  # blocks 0-2, 3-5, 6
    expected = torch.stack(
        [k[..., 0:3, :].mean(-2), k[..., 3:6, :].mean(-2), k[..., 6:7, :].mean(-2)], dim=-2
    )
    torch.testing.assert_close(pooled, expected)


def test_selection_keeps_forced_blocks_then_the_highest_selectable_scores():
    # a query at position 13 with block_size 2 is in block 6; blocks 7.. are its future
    selectable, forced = causal_block_candidates(torch.tensor([13]), 9, 2, n_local=2, initial=True)
    assert forced[0].nonzero().flatten().tolist() == [0, 5, 6]
    assert selectable[0].nonzero().flatten().tolist() == [1, 2, 3, 4]
    scores = torch.tensor([[0.0, 5.0, -1.0, 9.0, 2.0, -7.0, -9.0, 100.0, 100.0]])  # future scores are huge
    selected = select_blocks(scores, 5, selectable, forced)
    assert selected[0].nonzero().flatten().tolist() == [0, 1, 3, 5, 6]  # forced 0, 5, 6 + best two: 3, 1
    # more slots than allowed blocks: everything allowed, nothing in the future
    selected = select_blocks(scores, 9, selectable, forced)
    assert selected[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("block_size", [1, 3, 5])
def test_selecting_every_block_is_full_causal_attention(block_size):
    q, k, v = _qkv(T=11)
    nb = -(-11 // block_size)
    selected = torch.ones(2, 3, 11, nb, dtype=torch.bool)
    out = sparse_attention(q, k, v, selected, block_size, torch.arange(11))
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v, is_causal=True))


def _per_query_block_selection(T, block_size, top_k, seed=1):
    """A random causal selection shared by all queries of a block: (B, H, nb, top_k) indices."""
    g = torch.Generator().manual_seed(seed)
    nb = T // block_size
    selectable, forced = causal_block_candidates(torch.arange(nb) * block_size, nb, block_size)
    scores = torch.randn(2, 3, nb, nb, generator=g, dtype=torch.float64)
    selected = select_blocks(scores, top_k, selectable, forced)  # (B, H, nb, nb)
    # slot list: chosen blocks first, -1 for unused slots
    order = selected.to(torch.int8).argsort(dim=-1, descending=True, stable=True)[..., :top_k]
    index = torch.where(selected.gather(-1, order), order, -1)
    return selected, index


@pytest.mark.parametrize("top_k", [1, 2, 4])
def test_gathered_blocks_equal_the_mask_form_in_values_and_gradients(top_k):
    T, block_size = 12, 3
    q, k, v = _qkv(T=T)
    selected, index = _per_query_block_selection(T, block_size, top_k)
    per_query = selected.repeat_interleave(block_size, dim=2)  # (B, H, T, nb): each query its block's choice
    expected = sparse_attention(q, k, v, per_query, block_size, torch.arange(T))
    out = block_sparse_attention(q, k, v, index, block_size)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


def test_gathered_blocks_with_every_past_block_equal_causal_sdpa():
    q, k, v = _qkv(T=12)
    _, index = _per_query_block_selection(12, 3, top_k=4)  # 4 blocks: all of them
    torch.testing.assert_close(
        block_sparse_attention(q, k, v, index, 3), F.scaled_dot_product_attention(q, k, v, is_causal=True)
    )


def test_gathered_form_refuses_a_length_that_is_not_whole_blocks():
    q, k, v = _qkv(T=10)
    with pytest.raises(ValueError, match="multiple of block_size"):
        block_sparse_attention(q, k, v, torch.zeros(2, 3, 3, 1, dtype=torch.long), 3)
