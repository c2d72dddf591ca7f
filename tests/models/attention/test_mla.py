"""MLA: transformers' DeepseekV3 as the oracle, the latent-only cache (kv_lora_rank + qk_rope_head_dim
numbers per token), the weight-absorbed path == the naive one, and the DeepSeek-V3 preset's count."""

import pytest
import torch
from attention_zoo_helpers import assert_cached_equals_full, copy_hf_weights

import bestiary
from bestiary.models.attention.mla import HF_DEEPSEEK_V3_NAMES, MLA, Config


def _config(**overrides):
    sizes = dict(
        vocab_size=50,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=48,
        q_lora_rank=12,
        kv_lora_rank=10,
        qk_nope_head_dim=6,
        qk_rope_head_dim=4,
        v_head_dim=5,
    )
    return Config(**{**sizes, **overrides})


def _model(seed=0, **overrides):
    torch.manual_seed(seed)
    model = MLA(_config(**overrides)).double().eval()
    with torch.no_grad():  # RMSNorm weights away from 1, so a wrong norm shows
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


@pytest.mark.parametrize("q_lora_rank", [12, None])
def test_matches_transformers_deepseek_v3(q_lora_rank):
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    c = _config(q_lora_rank=q_lora_rank)
    hf_config = DeepseekV3Config(
        vocab_size=c.vocab_size,
        hidden_size=c.d_model,
        intermediate_size=c.d_ff,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_heads,  # transformers' MLA needs this (oracles.md)
        q_lora_rank=q_lora_rank,
        kv_lora_rank=c.kv_lora_rank,
        qk_nope_head_dim=c.qk_nope_head_dim,
        qk_rope_head_dim=c.qk_rope_head_dim,
        v_head_dim=c.v_head_dim,
        first_k_dense_replace=c.n_layers,  # every layer a dense MLP, as ours
        rope_interleave=False,  # our half-split RoPE layout
        rms_norm_eps=c.norm_eps,
        tie_word_embeddings=False,
    )
    torch.manual_seed(1)
    hf = DeepseekV3ForCausalLM(hf_config).double().eval()
    ours = _model(q_lora_rank=q_lora_rank)
    copy_hf_weights(ours, hf, HF_DEEPSEEK_V3_NAMES)
    tokens = torch.randint(0, c.vocab_size, (2, 9))
    with torch.no_grad():
        # RoPE angles are float32 in both, the rest float64
        torch.testing.assert_close(ours(tokens), hf(tokens).logits, rtol=1e-5, atol=1e-6)


def test_absorbed_path_equals_the_naive_path_outputs_and_gradients():
    naive, absorbed = _model(mode="naive"), _model(mode="absorbed")
    absorbed.load_state_dict(naive.state_dict())
    tokens = torch.randint(0, 50, (2, 8))
    out_naive, out_absorbed = naive(tokens), absorbed(tokens)
    torch.testing.assert_close(out_absorbed, out_naive, rtol=1e-10, atol=1e-10)
    out_naive.pow(2).sum().backward()
    out_absorbed.pow(2).sum().backward()
    for (name, a), b in zip(naive.named_parameters(), absorbed.parameters()):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-8, atol=1e-10, msg=name)


@pytest.mark.parametrize("mode", ["naive", "absorbed"])
def test_cached_decoding_equals_full_and_the_cache_holds_only_the_latent(mode):
    model, tokens = _model(mode=mode), torch.randint(0, 50, (2, 8))
    with torch.no_grad():
        cache = assert_cached_equals_full(model, tokens, rtol=1e-10, atol=1e-10)
    c = model.config
    per_token = c.kv_lora_rank + c.qk_rope_head_dim  # 14 numbers, vs 2 * 4 heads * 6.. for MHA
    assert cache[0].keys.shape == (2, 8, per_token) and cache[0].values is None
    assert cache.nbytes() == c.n_layers * 2 * 8 * per_token * 8  # layers * batch * T * per token * float64
    cache.crop(5)
    assert cache[1].keys.shape == (2, 5, per_token)


def test_latent_cache_refuses_another_size():
    model = _model()
    cache = model.init_cache(2)
    model(torch.zeros(2, 3, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="cached latents"):
        cache[0].update(torch.zeros(2, 1, 99, dtype=torch.float64))


def test_deepseek_v3_preset_counts_the_same_as_transformers():
    from transformers import DeepseekV3Config, DeepseekV3ForCausalLM

    c = bestiary.card("mla_deepseek_v3_layer").presets["mla_deepseek_v3_layer"].overrides
    hf_config = DeepseekV3Config(
        vocab_size=c["vocab_size"],
        hidden_size=c["d_model"],
        intermediate_size=c["d_ff"],
        num_hidden_layers=1,
        num_attention_heads=c["n_heads"],
        num_key_value_heads=c["n_heads"],
        q_lora_rank=c["q_lora_rank"],
        kv_lora_rank=c["kv_lora_rank"],
        qk_nope_head_dim=c["qk_nope_head_dim"],
        qk_rope_head_dim=c["qk_rope_head_dim"],
        v_head_dim=c["v_head_dim"],
        first_k_dense_replace=1,
        tie_word_embeddings=False,
    )
    with torch.device("meta"):
        hf = DeepseekV3ForCausalLM(hf_config)
        ours = bestiary.build("mla_deepseek_v3_layer")
    hf_count = sum(p.numel() for p in hf.parameters())
    assert bestiary.count_params(ours) == hf_count == 2_436_848_640
    attention = ours.blocks[0].mixer
    assert sum(p.numel() for p in attention.parameters()) == 187_107_328  # V3's MLA, per layer
