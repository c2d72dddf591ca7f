"""Nyströmformer: hidden states equal transformers' NystromformerModel with copied weights (also in
the exact few-token case); the iterative pseudo-inverse converges to
torch.linalg.pinv; with as many landmarks as tokens the approximation is exact softmax attention."""

import re

import pytest
import torch

import bestiary
from bestiary.models.attention.nystromformer import NystromAttention, iterative_pinv, segment_means

transformers = pytest.importorskip("transformers")

HF_NAMES = [
    (r"embeddings\.word_embeddings\.", "embed.tok."),
    (r"embeddings\.token_type_embeddings\.", "embed.token_type."),
    (r"embeddings\.LayerNorm\.", "embed.norm."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.query\.", r"blocks.\1.mixer.q_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.key\.", r"blocks.\1.mixer.k_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.value\.", r"blocks.\1.mixer.v_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.self\.conv\.", r"blocks.\1.mixer.conv."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.dense\.", r"blocks.\1.mixer.out_proj."),
    (r"encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", r"blocks.\1.mixer_norm."),
    (r"encoder\.layer\.(\d+)\.intermediate\.dense\.", r"blocks.\1.mlp.up."),
    (r"encoder\.layer\.(\d+)\.output\.dense\.", r"blocks.\1.mlp.down."),
    (r"encoder\.layer\.(\d+)\.output\.LayerNorm\.", r"blocks.\1.mlp_norm."),
]


def _pair(seq_len, num_landmarks=4):
    hf_config = transformers.NystromformerConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=32,
        num_landmarks=num_landmarks,
        segment_means_seq_len=seq_len,
        conv_kernel_size=3,
    )
    torch.manual_seed(0)
    hf = transformers.NystromformerModel(hf_config).eval()
    for layer in hf.encoder.layer:  # Z_0 scaled per (batch, head), as ours (transformers' option)
        layer.attention.self.init_option = "per_matrix"
    ours = bestiary.build(
        "nystromformer",
        vocab_size=64,
        d_model=32,
        n_layers=2,
        n_heads=4,
        d_ff=64,
        max_seq_len=32,
        num_landmarks=num_landmarks,
        kernel_size=3,
    ).eval()
    state = {}
    for key, tensor in hf.state_dict().items():
        if key == "embeddings.position_embeddings.weight":
            state["embed.pos.weight"] = tensor[2:34]  # transformers' positions start at row 2
            continue
        for pattern, replacement in HF_NAMES:
            if re.fullmatch(pattern + r"(weight|bias)", key):
                state[re.sub(pattern, replacement, key)] = tensor
                break
        else:
            raise KeyError(key)
    ours.load_state_dict(state)  # strict: every tensor of ours is written
    return ours, hf


def test_hidden_states_equal_transformers_nystromformer():
    ours, hf = _pair(seq_len=16)  # 4 landmarks of 4 tokens each
    tokens = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(tokens).last_hidden_state, atol=1e-4, rtol=1e-4)
        # (transformers 5.24 cannot take an attention_mask here: its (B, 1, T, T) mask does not fit
        # the (m x T) landmark scores; ours masks padding keys in softmax(Q̃ Kᵀ))
        everything = torch.ones(2, 16, dtype=torch.bool)
        torch.testing.assert_close(ours(tokens, everything), ours(tokens))


def test_as_many_landmarks_as_tokens_is_exact_attention_as_in_transformers():
    ours, hf = _pair(seq_len=4, num_landmarks=4)
    tokens = torch.randint(0, 64, (2, 4))
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens), hf(tokens).last_hidden_state, atol=1e-5, rtol=1e-5)


def test_preset_parameter_count_equals_transformers_less_two_position_rows():
    with torch.device("meta"):
        hf = transformers.NystromformerModel(transformers.NystromformerConfig())
        ours = bestiary.build("nystromformer_512")
    # counted: embeddings (token, position, token type, LayerNorm) and 12 encoder layers; no pooler
    hf_count = sum(p.numel() for p in hf.parameters())
    assert sum(p.numel() for p in ours.parameters()) == hf_count - 2 * 768 == 108_498_576


def test_iterative_pseudo_inverse_converges_to_pinv():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 6, 6, generator=g, dtype=torch.float64).softmax(-1)  # like softmax(Q̃ K̃ᵀ)
    errors = [(iterative_pinv(a, n) - torch.linalg.pinv(a)).abs().max().item() for n in (2, 6, 30)]
    assert errors[0] > errors[1] > errors[2]
    torch.testing.assert_close(iterative_pinv(a, 30), torch.linalg.pinv(a))


def test_landmarks_are_segment_means():
    x = torch.arange(20.0).view(1, 1, 10, 2)
    # 10 tokens into 4 segments: boundaries round(0, 2.5, 5, 7.5, 10) = 0, 2, 5, 8, 10
    expected = torch.stack([x[..., a:b, :].mean(-2) for a, b in ((0, 2), (2, 5), (5, 8), (8, 10))], dim=-2)
    torch.testing.assert_close(segment_means(x, 4), expected)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        NystromAttention(30, 4, num_landmarks=4, kernel_size=3)
    mixer = NystromAttention(32, 4, num_landmarks=4, kernel_size=3)
    x = torch.randn(2, 8, 32)
    with pytest.raises(TypeError, match="bool"):
        mixer(x, mask=torch.ones(2, 8))
    with pytest.raises(ValueError, match="mask"):
        mixer(x, mask=torch.ones(2, 7, dtype=torch.bool))
