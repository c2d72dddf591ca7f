"""GQA: transformers' Llama with n_kv_heads < n_heads as the oracle, MQA and MHA as the extremes, the
cache size, and the mean-pooling conversion from an MHA checkpoint."""

import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full, copy_hf_weights

import bestiary
from bestiary.models.attention.gqa import GQA, HF_LLAMA_ATTENTION_NAMES, Config


def _config(n_kv_heads):
    return Config(vocab_size=50, d_model=32, n_layers=2, n_heads=4, n_kv_heads=n_kv_heads, d_ff=48)


def _model(n_kv_heads, seed=0):
    torch.manual_seed(seed)
    return GQA(_config(n_kv_heads)).double().eval()


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])  # MQA, GQA, MHA
def test_matches_transformers_llama_with_grouped_kv_heads(n_kv_heads):
    from transformers import LlamaConfig, LlamaForCausalLM

    c = _config(n_kv_heads)
    hf_config = LlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.d_ff,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=n_kv_heads,
        rms_norm_eps=c.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta},
        tie_word_embeddings=True,
        attention_bias=False,
    )
    torch.manual_seed(1)
    hf = LlamaForCausalLM(hf_config).double().eval()
    ours = _model(n_kv_heads)
    copy_hf_weights(ours, hf, HF_LLAMA_ATTENTION_NAMES)
    tokens = torch.randint(0, c.vocab_size, (2, 9))
    with torch.no_grad():
        # RoPE's angles are float32 in both: the rest is float64
        torch.testing.assert_close(ours(tokens), hf(tokens).logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_kv_heads", [1, 2, 4])
def test_cached_decoding_equals_full_and_the_cache_shrinks_by_the_group_size(n_kv_heads):
    model, tokens = _model(n_kv_heads), torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        cache = assert_cached_equals_full(model, tokens, rtol=1e-10, atol=1e-10)
    mha_numbers = 2 * 2 * 4 * 8 * 8 * 2  # layers * (k, v) * n_heads * T * head_dim * batch
    assert cache.nbytes() * (4 // n_kv_heads) == mha_numbers * 8  # float64: 8 bytes a number
    assert cache[0].keys.shape == (2, n_kv_heads, 8, 8)


def test_from_mha_mean_pools_each_groups_key_and_value_heads():
    mha = _model(4)
    gqa = GQA.from_mha(mha, n_kv_heads=2)
    k_mha = mha.blocks[0].mixer.k_proj.weight.view(4, 8, 32)  # (heads, Dh, D)
    k_gqa = gqa.blocks[0].mixer.k_proj.weight.view(2, 8, 32)
    torch.testing.assert_close(k_gqa[1], (k_mha[2] + k_mha[3]) / 2)
    torch.testing.assert_close(gqa.blocks[1].mixer.q_proj.weight, mha.blocks[1].mixer.q_proj.weight)


def test_from_mha_is_exact_when_the_heads_of_a_group_already_agree():
    mha = _model(4)
    with torch.no_grad():
        for block in mha.blocks:
            for proj in (block.mixer.k_proj, block.mixer.v_proj):
                heads = proj.weight.view(2, 2, 8, 32)  # (groups, per group, Dh, D)
                heads[:, 1] = heads[:, 0]  # both heads of a group identical: one k/v head suffices
    tokens = torch.randint(0, 50, (2, 7))
    gqa = GQA.from_mha(mha, n_kv_heads=2).eval()
    with torch.no_grad():
        torch.testing.assert_close(gqa(tokens), mha(tokens), rtol=1e-10, atol=1e-10)
        # ... and different when they disagree (the pooling loses information, hence uptraining)
        other = _model(4, seed=3)
        assert not torch.allclose(GQA.from_mha(other, 2).eval()(tokens), other(tokens), atol=1e-4)


def test_from_mha_refuses_a_grouped_model():
    with pytest.raises(ValueError, match="expected an MHA model"):
        GQA.from_mha(_model(2), n_kv_heads=1)


def test_registered():
    assert isinstance(bestiary.build("gqa", tiny=True), GQA)
