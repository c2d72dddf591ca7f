"""Conformer: a block equals transformers' Wav2Vec2ConformerEncoderLayer (relative positions) with
copied weights, with and without padding; relative scores depend only on the distance i - j."""

import pytest
import torch

import bestiary
from bestiary.models.attention.conformer import Config, ConformerBlock, RelPositionSelfAttention

transformers = pytest.importorskip("transformers")
conformer_hf = pytest.importorskip("transformers.models.wav2vec2_conformer.modeling_wav2vec2_conformer")

OURS_TO_HF = {
    "ffn1_norm": "ffn1_layer_norm",
    "ffn1.up": "ffn1.intermediate_dense",
    "ffn1.down": "ffn1.output_dense",
    "ffn2_norm": "ffn2_layer_norm",
    "ffn2.up": "ffn2.intermediate_dense",
    "ffn2.down": "ffn2.output_dense",
    "attn_norm": "self_attn_layer_norm",
    "attn.q_proj": "self_attn.linear_q",
    "attn.k_proj": "self_attn.linear_k",
    "attn.v_proj": "self_attn.linear_v",
    "attn.out_proj": "self_attn.linear_out",
    "attn.pos_proj": "self_attn.linear_pos",
    "attn.pos_bias_u": "self_attn.pos_bias_u",
    "attn.pos_bias_v": "self_attn.pos_bias_v",
    "conv.norm": "conv_module.layer_norm",
    "conv.pointwise_in": "conv_module.pointwise_conv1",
    "conv.depthwise": "conv_module.depthwise_conv",
    "conv.batch_norm": "conv_module.batch_norm",
    "conv.pointwise_out": "conv_module.pointwise_conv2",
    "final_norm": "final_layer_norm",
}


def _hf_key(ours_key):
    for prefix, hf_prefix in OURS_TO_HF.items():
        if ours_key == prefix or ours_key.startswith(prefix + "."):
            return hf_prefix + ours_key[len(prefix) :]
    raise KeyError(ours_key)


def _pair():
    torch.manual_seed(0)
    ours = ConformerBlock(Config(d_model=16, n_heads=2, d_ff=32, kernel_size=3)).eval()
    with torch.no_grad():  # make every parameter and running statistic matter
        for name, tensor in ours.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 2.0)
            elif tensor.is_floating_point():
                tensor.normal_(0.0, 0.3)
    config = transformers.Wav2Vec2ConformerConfig(
        hidden_size=16,
        num_attention_heads=2,
        intermediate_size=32,
        conv_depthwise_kernel_size=3,
        hidden_act="swish",
        position_embeddings_type="relative",
        max_source_positions=64,
        attn_implementation="eager",
    )
    hf = conformer_hf.Wav2Vec2ConformerEncoderLayer(config).eval()
    hf_state = hf.state_dict()
    assert {_hf_key(k) for k in ours.state_dict()} == set(hf_state)  # every tensor, once
    hf.load_state_dict({_hf_key(k): v for k, v in ours.state_dict().items()})
    return ours, hf, conformer_hf.Wav2Vec2ConformerRelPositionalEmbedding(config)


def test_block_equals_transformers_conformer_layer():
    ours, hf, rel = _pair()
    x = torch.randn(2, 11, 16)
    mask = torch.ones(2, 11, dtype=torch.bool)
    mask[1, 7:] = False
    additive = torch.zeros(2, 1, 11, 11).masked_fill(~mask[:, None, None, :], torch.finfo(torch.float32).min)
    with torch.no_grad():
        pe = rel(x)
        torch.testing.assert_close(ours(x), hf(x, relative_position_embeddings=pe), atol=1e-5, rtol=1e-5)
        expected = hf(x, attention_mask=additive, relative_position_embeddings=pe)
        torch.testing.assert_close(ours(x, mask), expected, atol=1e-5, rtol=1e-5)


def test_scores_depend_on_content_and_distance_only():
    torch.manual_seed(0)
    attn = RelPositionSelfAttention(16, 2).double()
    with torch.no_grad():
        attn.pos_bias_u.normal_()
        attn.pos_bias_v.normal_()
    x = torch.randn(1, 12, 16, dtype=torch.float64)
    shifted = torch.cat(
        [torch.randn(1, 3, 16, dtype=torch.float64), x[:, :9]], dim=1
    )  # frame t moves to t + 3
    with torch.no_grad():
        torch.testing.assert_close(attn.scores(shifted)[0][..., 3:, 3:], attn.scores(x)[0][..., :9, :9])
        # and distance does matter: the same content at another distance scores differently
        assert not torch.allclose(attn.scores(x)[0][..., 0, 1], attn.scores(x.flip(1))[0][..., 11, 10])


def test_model_runs_sequences_and_refuses_bad_masks():
    model = bestiary.build("conformer", tiny=True).eval()
    x = torch.randn(2, 10, 8)
    assert model(x).shape == (2, 10, 16)
    with pytest.raises(TypeError, match="bool"):
        model(x, torch.ones(2, 10))
    with pytest.raises(ValueError, match="mask"):
        model(x, torch.ones(2, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible by n_heads"):
        RelPositionSelfAttention(15, 2)
