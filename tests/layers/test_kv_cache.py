"""The KV cache: bookkeeping, and cached decoding gives the same logits as a full forward."""

import pytest
import torch

import bestiary
from bestiary.layers import KVCache


def test_cache_bookkeeping():
    cache = KVCache(2)
    assert cache.length == 0 and len(cache) == 0
    k = torch.randn(1, 2, 3, 4)
    out_k, _ = cache.update(0, k, k)
    assert out_k is k and cache.length == 3 and cache.layer_length(1) == 0
    out_k, _ = cache.update(0, torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4))
    assert out_k.shape == (1, 2, 5, 4)
    torch.testing.assert_close(out_k[..., :3, :], k)
    cache.crop(4)
    assert cache.length == 4
    assert cache.nbytes() == 2 * 4 * 2 * 4 * 4
    cache.reset()
    assert cache.length == 0
    with pytest.raises(IndexError):
        cache.update(2, k, k)
    with pytest.raises(ValueError, match="shape"):
        cache.update(0, k, torch.randn(1, 2, 3, 5))


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # GQA + RoPE + SwiGLU + RMSNorm
        {"n_kv_heads": 1},  # MQA
        {"position": "learned", "norm": "layernorm", "mlp": "gelu_tanh", "bias": True},  # GPT-2 style
        {"position": "alibi"},
        {"position": "sinusoidal"},
        {"sliding_window": 3},
    ],
)
def test_cached_decoding_gives_identical_logits(overrides):
    torch.manual_seed(0)
    model = bestiary.build("decoder_only", tiny=True, **overrides).eval()
    tokens = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        full = model(tokens)
        cache = model.new_kv_cache()
        steps = [model(tokens[:, :5], kv_cache=cache)]
        for t in range(5, 12):
            steps.append(model(tokens[:, t : t + 1], kv_cache=cache))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    assert cache.length == 12


def test_greedy_generation_is_the_same_with_and_without_cache():
    torch.manual_seed(0)
    model = bestiary.build("decoder_only", tiny=True).eval()
    prompt = torch.randint(0, 64, (1, 4))
    with torch.no_grad():
        slow = prompt
        for _ in range(10):
            slow = torch.cat([slow, model(slow)[:, -1:].argmax(-1)], dim=1)
        cache = model.new_kv_cache()
        fast, nxt = prompt, prompt
        for _ in range(10):
            nxt = model(nxt, kv_cache=cache)[:, -1:].argmax(-1)
            fast = torch.cat([fast, nxt], dim=1)
    assert torch.equal(slow, fast)


def test_start_pos_must_agree_with_the_cache():
    model = bestiary.build("decoder_only", tiny=True).eval()
    cache = model.new_kv_cache()
    model(torch.zeros(1, 3, dtype=torch.long), kv_cache=cache)
    with pytest.raises(ValueError, match="start_pos"):
        model(torch.zeros(1, 1, dtype=torch.long), kv_cache=cache, start_pos=5)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(TypeError, match="long"):
        model(torch.zeros(1, 3))
