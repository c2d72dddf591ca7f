"""A model's decoding cache: bookkeeping, and cached decoding gives the same logits as a full forward."""

import pytest
import torch

import bestiary
from bestiary.layers import Cache, KVCache


def test_model_cache_bookkeeping():
    model = bestiary.build("decoder_only", tiny=True).eval()
    cache = model.init_cache(1)
    assert isinstance(cache, Cache) and len(cache.layers) == 2 and len(cache) == 0
    assert all(isinstance(layer, KVCache) for layer in cache)
    with torch.no_grad():
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)
    assert len(cache) == 5 and all(layer.length == 5 for layer in cache)
    # keys + values, 5 positions, n_kv_heads 2 of head_dim 8, float32, in each of 2 layers
    assert cache.nbytes() == 2 * (2 * 5 * 2 * 8 * 4)
    cache.crop(3)  # e.g. rejected draft tokens in speculative decoding
    assert len(cache) == 3 and all(layer.length == 3 for layer in cache)
    with pytest.raises(ValueError, match="length"):
        cache.crop(4)


class _RunningState:
    """A cache that keeps a running state, as a recurrent mixer's does: it cannot forget positions."""

    def nbytes(self) -> int:
        return 0


def test_a_running_state_cannot_be_cropped():
    cache = Cache([KVCache(), _RunningState()])
    cache.advance(4)
    with pytest.raises(TypeError, match="cannot forget"):
        cache.crop(2)


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
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)]
        for t in range(5, 12):
            steps.append(model(tokens[:, t : t + 1], cache=cache))
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
        cache = model.init_cache(1)
        fast, nxt = prompt, prompt
        for _ in range(10):
            nxt = model(nxt, cache=cache)[:, -1:].argmax(-1)
            fast = torch.cat([fast, nxt], dim=1)
    assert torch.equal(slow, fast)


def test_positions_past_the_context_are_refused():
    model = bestiary.build("decoder_only", tiny=True).eval()
    cache = model.init_cache(1)
    model(torch.zeros(1, 60, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=cache)  # positions 60..64 > 64
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))
    with pytest.raises(TypeError, match="long"):
        model(torch.zeros(1, 3))
