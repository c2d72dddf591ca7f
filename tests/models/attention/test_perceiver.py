"""Perceiver IO: logits equal transformers' PerceiverForMaskedLM with copied weights (with and
without padding); the perceiver_io preset has transformers' parameter count; the cost in the input
length is only the cross-attention: latents never see the positions beyond the input."""

import re

import pytest
import torch

import bestiary

transformers = pytest.importorskip("transformers")

HF_NAMES = [
    (r"perceiver\.input_preprocessor\.embeddings\.weight", "tok_embed.weight"),
    (r"perceiver\.input_preprocessor\.position_embeddings\.weight", "pos_embed.weight"),
    (r"perceiver\.embeddings\.latents", "latents"),
    (r"perceiver\.decoder\.output_position_encodings\.position_embeddings", "output_queries"),
    (r"embedding_decoder\.bias", "output_bias"),
    (r"perceiver\.encoder\.cross_attention\.", "encoder."),
    (r"perceiver\.encoder\.self_attends\.(\d+)\.", r"latent_layers.\1."),
    (r"perceiver\.decoder\.decoding_cross_attention\.", "decoder."),
    (r"attention\.self\.layernorm1\.", "attention.q_norm."),
    (r"attention\.self\.layernorm2\.", "attention.kv_norm."),
    (r"attention\.self\.query\.", "attention.q_proj."),
    (r"attention\.self\.key\.", "attention.k_proj."),
    (r"attention\.self\.value\.", "attention.v_proj."),
    (r"attention\.output\.dense\.", "attention.out_proj."),
    (r"\.layernorm\.", ".mlp_norm."),
    (r"mlp\.dense1\.", "mlp.up."),
    (r"mlp\.dense2\.", "mlp.down."),
]


def _ours_key(hf_key):
    for pattern, replacement in HF_NAMES:
        hf_key = re.sub(pattern, replacement, hf_key)
    return hf_key


def _pair():
    hf_config = transformers.PerceiverConfig(
        vocab_size=64,
        d_model=16,
        d_latents=24,
        num_latents=6,
        num_self_attends_per_block=2,
        num_self_attention_heads=4,
        num_cross_attention_heads=8,  # the decoder's 8 heads and 8 x 32 query width are fixed in transformers
        max_position_embeddings=12,
    )
    torch.manual_seed(0)
    hf = transformers.PerceiverForMaskedLM(hf_config).eval()
    ours = bestiary.build(
        "perceiver",
        vocab_size=64,
        d_model=16,
        d_latents=24,
        num_latents=6,
        n_layers=2,
        n_heads=4,
        cross_heads=8,
        decoder_qk_channels=256,
        max_seq_len=12,
    ).eval()
    ours_state = ours.state_dict()
    hf_state = {
        k: v for k, v in hf.state_dict().items() if "embedding_decoder" not in k or k.endswith("bias")
    }
    assert {_ours_key(k) for k in hf_state} == set(ours_state)  # every tensor, once
    ours.load_state_dict({_ours_key(k): v for k, v in hf_state.items()})
    return ours, hf


def test_logits_equal_transformers_perceiver_for_masked_lm():
    ours, hf = _pair()
    tokens = torch.randint(0, 64, (2, 12))  # transformers decodes all max_position_embeddings queries
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(input_ids=tokens).logits, atol=1e-5, rtol=1e-5)
        padding = torch.ones(2, 12, dtype=torch.bool)
        padding[1, 8:] = False
        expected = hf(input_ids=tokens, attention_mask=padding.long()).logits
        torch.testing.assert_close(ours(tokens, padding), expected, atol=1e-5, rtol=1e-5)


def test_a_shorter_input_decodes_the_first_positions_of_the_same_queries():
    ours, hf = _pair()
    tokens = torch.randint(0, 64, (2, 7))
    padded = torch.cat([tokens, torch.zeros(2, 5, dtype=torch.long)], dim=1)
    padding = torch.arange(12)[None, :].expand(2, -1) < 7
    with torch.no_grad():
        # our 7 queries read the latents of the 7 inputs; transformers' 12 queries, the same latents
        expected = hf(input_ids=padded, attention_mask=padding.long()).logits[:, :7]
        torch.testing.assert_close(ours(tokens), expected, atol=1e-5, rtol=1e-5)


def test_preset_parameter_count_equals_transformers_language_perceiver():
    # counted: byte and position embeddings, latents, encoder cross-attention layer, 26 latent
    # self-attention layers, the decoder's output queries and cross-attention layer, the output bias
    with torch.device("meta"):
        hf = transformers.PerceiverForMaskedLM(transformers.PerceiverConfig())
        ours = bestiary.build("perceiver_io")
    expected = sum(p.numel() for p in hf.parameters())
    assert sum(p.numel() for p in ours.parameters()) == expected == 269_319_430


def test_bad_padding_masks_are_refused():
    ours = bestiary.build("perceiver", tiny=True)
    tokens = torch.randint(0, 64, (2, 5))
    with pytest.raises(TypeError, match="bool"):
        ours(tokens, torch.ones(2, 5))
    with pytest.raises(ValueError, match="padding_mask"):
        ours(tokens, torch.ones(2, 4, dtype=torch.bool))
