"""Ring attention: the online softmax equals softmax attention; across 2 real processes (torchrun,
Gloo) the ring equals full attention in one; the model equals itself with ordinary attention."""

import sys
from pathlib import Path

import pytest
import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.ring_attention import OnlineSoftmax, blockwise_attention

sys.path.insert(0, str(Path(__file__).parents[2] / "train"))
from torchrun_launch import run_two_processes  # noqa: E402

HERE = Path(__file__).parent


def _qkv(T=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, T, 8, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("block_size", [1, 4, 5, 13, 20])
@pytest.mark.parametrize("causal", [True, False])
def test_blockwise_online_softmax_equals_attention_in_values_and_gradients(block_size, causal):
    q, k, v = _qkv()
    expected = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)
    out = blockwise_attention(q, k, v, block_size=block_size, causal=causal)
    torch.testing.assert_close(out, expected)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))
    expected_grads = torch.autograd.grad(expected.square().sum(), (q, k, v))
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e)


def test_online_softmax_survives_scores_that_would_overflow_exp():
    q, k, v = (t.detach() * 100 for t in _qkv(T=6))  # scores ~ 1e4: exp() overflows without the max
    state = OnlineSoftmax(q)
    state.add(k[..., :3, :], v[..., :3, :])
    state.add(k[..., 3:, :], v[..., 3:, :])
    torch.testing.assert_close(state.result(), torch.nn.functional.scaled_dot_product_attention(q, k, v))


@pytest.mark.distributed
@pytest.mark.parametrize("causal", ["causal", "full"])
def test_ring_attention_across_two_processes_equals_full_attention(causal):
    proc = run_two_processes(HERE / "ring_attention_worker.py", causal, timeout=120)
    assert "equals full attention" in proc.stdout


def test_the_blockwise_mixer_equals_ordinary_attention_with_the_same_weights():
    torch.manual_seed(0)
    model = bestiary.build("ring_attention", tiny=True).eval()  # chunk_size 3, GQA 4 heads / 2
    blockwise = model.blocks[0].mixer
    ordinary = MultiHeadAttention(32, 4, n_kv_heads=2, bias=False, causal=True, rope=blockwise.rope).eval()
    ordinary.load_state_dict(blockwise.state_dict())
    x = torch.randn(2, 11, 32)
    with torch.no_grad():
        torch.testing.assert_close(blockwise(x), ordinary(x), atol=1e-5, rtol=1e-5)
