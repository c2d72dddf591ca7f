"""Sliding windows and attention sinks against transformers: our attention with GPT-OSS's learned
sinks (and its alternating sliding window) equals GptOssAttention with copied weights; decoder_only
with a sliding window equals Mistral's sliding-window model."""

import pytest
import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention, scaled_dot_product_attention
from bestiary.layers.positions import RotaryEmbedding
from bestiary.llm.convert import llama_state_dict, load_weights

transformers = pytest.importorskip("transformers")


def _additive_mask(T, window=None):
    """(1, 1, T, T): 0 where query i may see key j (causal, inside the window), -inf elsewhere."""
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    keep = j <= i
    if window is not None:
        keep &= i - j < window
    return torch.zeros(1, 1, T, T).masked_fill(~keep, float("-inf"))


@pytest.mark.parametrize("window", [None, 4])
def test_sinks_equal_gpt_oss_attention_with_copied_weights(window):
    from transformers.models.gpt_oss.modeling_gpt_oss import GptOssAttention, GptOssRotaryEmbedding

    config = transformers.GptOssConfig(
        hidden_size=32,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        num_hidden_layers=2,
        sliding_window=4,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    reference = GptOssAttention(config, layer_idx=0).eval()
    with torch.no_grad():
        reference.sinks.normal_()  # initialised at zero: make them matter
    ours = MultiHeadAttention(
        32,
        4,
        n_kv_heads=2,
        head_dim=8,
        bias=True,
        causal=True,
        window=window,
        rope=RotaryEmbedding(8),
        sinks=True,
    ).eval()
    ours.load_state_dict({k.replace("o_proj.", "out_proj."): v for k, v in reference.state_dict().items()})
    x = torch.randn(2, 9, 32)
    positions = torch.arange(9)[None].expand(2, -1)
    with torch.no_grad():
        cos_sin = GptOssRotaryEmbedding(config)(x, positions)
        expected, _ = reference(x, position_embeddings=cos_sin, attention_mask=_additive_mask(9, window))
        torch.testing.assert_close(ours(x), expected, atol=1e-5, rtol=1e-5)


def test_a_sink_lets_a_head_attend_to_nothing():
    q, k, v = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    plain = scaled_dot_product_attention(q, k, v, is_causal=True)
    quiet = scaled_dot_product_attention(q, k, v, is_causal=True, sinks=torch.tensor([50.0, -50.0]))
    torch.testing.assert_close(
        quiet[:, 0], torch.zeros_like(quiet[:, 0]), atol=1e-12, rtol=0
    )  # all on the sink
    torch.testing.assert_close(quiet[:, 1], plain[:, 1])  # a sink at -inf changes nothing


def test_decoder_only_sliding_window_equals_mistral():
    config = transformers.MistralConfig(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=5,
        tie_word_embeddings=True,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    reference = transformers.MistralForCausalLM(config).eval()
    model = bestiary.build(
        "decoder_only",
        vocab_size=64,
        d_model=32,
        d_ff=64,
        n_layers=2,
        n_heads=4,
        n_kv_heads=2,
        sliding_window=5,
        norm_eps=config.rms_norm_eps,
    ).eval()
    load_weights(model, llama_state_dict(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 16))  # three windows long
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), reference(tokens).logits, atol=1e-5, rtol=1e-5)
