"""YaRN: frequencies and temperature equal transformers' YaRN initialisation; the model equals a
transformers Llama with YaRN RoPE and copied weights; and the by-parts behaviour itself."""

import math

import pytest
import torch

import bestiary
from bestiary.layers.positions import RotaryEmbedding, YaRN
from bestiary.llm.convert import llama_state_dict, load_weights
from bestiary.options import ConfigError

transformers = pytest.importorskip("transformers")
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402


def _hf_config(factor, original, theta, head_dim, **extra):
    return transformers.LlamaConfig(
        hidden_size=2 * head_dim,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=head_dim,
        intermediate_size=64,
        num_hidden_layers=2,
        vocab_size=64,
        max_position_embeddings=int(original * factor),
        rope_parameters={
            "rope_type": "yarn",
            "rope_theta": theta,
            "factor": factor,
            "original_max_position_embeddings": original,
            **extra,
        },
        tie_word_embeddings=True,
        attn_implementation="eager",
    )


@pytest.mark.parametrize(
    "factor, original, theta, head_dim, betas",
    [(4.0, 2048, 10000.0, 64, (32, 1)), (8.0, 4096, 500000.0, 128, (32, 1)), (2.0, 64, 10000.0, 16, (16, 2))],
)
def test_frequencies_and_temperature_equal_transformers(factor, original, theta, head_dim, betas):
    beta_fast, beta_slow = betas
    hf_config = _hf_config(factor, original, theta, head_dim, beta_fast=beta_fast, beta_slow=beta_slow)
    inv_freq, attention_factor = ROPE_INIT_FUNCTIONS["yarn"](hf_config, "cpu")
    yarn = YaRN(factor, original, head_dim=head_dim, theta=theta, beta_fast=beta_fast, beta_slow=beta_slow)
    rope = RotaryEmbedding(head_dim, theta, scaling=yarn, attention_factor=yarn.attention_factor)
    torch.testing.assert_close(rope.inv_freq, inv_freq, rtol=1e-6, atol=0)
    assert yarn.attention_factor == pytest.approx(attention_factor)


def test_fast_pairs_are_kept_slow_pairs_are_divided_by_the_factor():
    yarn = YaRN(4.0, 1024, head_dim=64, theta=10000.0)
    plain = RotaryEmbedding(64, 10000.0).inv_freq
    scaled = RotaryEmbedding(64, 10000.0, scaling=yarn).inv_freq
    rotations = 1024 * plain / (2 * math.pi)  # turns over the trained context, per pair
    fast, slow = rotations > 32, rotations < 1
    assert fast.any() and slow.any()
    torch.testing.assert_close(scaled[fast], plain[fast])  # short-range detail untouched
    torch.testing.assert_close(scaled[slow], plain[slow] / 4)  # never an angle unseen in training
    between = ~fast & ~slow
    assert ((scaled[between] < plain[between]) & (scaled[between] > plain[between] / 4)).all()


def test_factor_one_is_plain_rope():
    yarn = YaRN(1.0, 512, head_dim=32)
    torch.testing.assert_close(RotaryEmbedding(32, scaling=yarn).inv_freq, RotaryEmbedding(32).inv_freq)
    assert yarn.attention_factor == 1.0


def test_model_equals_transformers_llama_with_yarn_rope():
    hf_config = _hf_config(4.0, 16, 10000.0, 16)
    torch.manual_seed(0)
    reference = transformers.LlamaForCausalLM(hf_config).eval()
    model = bestiary.build(
        "yarn",
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=2,
        n_kv_heads=1,
        d_ff=64,
        original_max_seq_len=16,
        max_seq_len=64,
        norm_eps=hf_config.rms_norm_eps,
    ).eval()
    load_weights(model, llama_state_dict(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 40))  # past the trained 16 positions
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, atol=1e-4, rtol=1e-4)


def test_a_sequence_past_the_extended_context_is_refused_and_contexts_must_extend():
    model = bestiary.build("yarn", tiny=True)  # max_seq_len 32
    with pytest.raises(ValueError, match="exceed max_seq_len=32"):
        model(torch.zeros(1, 33, dtype=torch.long))
    with pytest.raises(ConfigError, match="must be >= original_max_seq_len"):
        bestiary.build("yarn", tiny=True, max_seq_len=4)
