"""flash_linear_attention: the hand-written backward (three chunkwise linear attentions) passes
gradcheck and equals autograd through the recurrence; it saves only q, k, v where autograd keeps
every chunk's intermediates; the model's forms agree and decoding matches."""

import torch
from linear_attention_helpers import assert_cached_pieces_equal_the_whole, assert_modes_agree, build_float64

from bestiary.layers.linear_attention import linear_attention
from bestiary.models.attention.flash_linear_attention import ChunkwiseLinearAttention


def _qkv(T=10, seed=0, batch=2, heads=3, dim=4):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, heads, T, dim)
    return [torch.randn(shape, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


def test_the_recomputing_backward_passes_gradcheck():
    q, k, v = _qkv(T=7, batch=1, heads=2, dim=3)  # chunks of 3 that don't divide T
    assert torch.autograd.gradcheck(lambda q, k, v: ChunkwiseLinearAttention.apply(q, k, v, 3), (q, k, v))


def test_outputs_and_gradients_equal_autograd_through_the_recurrence():
    q, k, v = _qkv(seed=1)
    weights = torch.randn(2, 3, 10, 4, dtype=torch.float64)
    out = ChunkwiseLinearAttention.apply(q, k, v, 4)
    grads = torch.autograd.grad((out * weights).sum(), (q, k, v))
    reference, _ = linear_attention(q, k, v, mode="recurrent")
    ref_grads = torch.autograd.grad((reference * weights).sum(), (q, k, v))
    torch.testing.assert_close(out, reference)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want)


def _saved_bytes(fn):
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(saved)


def test_only_q_k_v_are_kept_for_the_backward():
    q, k, v = _qkv(T=256)
    flash = _saved_bytes(lambda: ChunkwiseLinearAttention.apply(q, k, v, 16))
    stored = _saved_bytes(lambda: linear_attention(q, k, v, mode="chunkwise", chunk_size=16))
    assert flash == 3 * q.numel() * 8
    assert stored > 3 * flash  # autograd keeps every chunk's scores, masks and states


def test_the_three_forms_agree_outputs_and_gradients():
    assert_modes_agree(build_float64("flash_linear_attention"))


def test_cached_decoding_equals_the_whole():
    before, after = assert_cached_pieces_equal_the_whole(build_float64("flash_linear_attention"))
    assert before == after
