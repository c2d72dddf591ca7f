"""Gated attention: transformers' Qwen3NextAttention (QK-norm, sigmoid output gate) as the oracle, and
cached decoding."""

import torch
from attention_zoo_helpers import assert_cached_equals_full

import bestiary
from bestiary.layers import RotaryEmbedding
from bestiary.models.attention.gated_attention import (
    Config,
    GatedAttention,
    GatedAttentionLM,
    weights_from_qwen3_next,
)

D, H, H_KV, DH = 32, 4, 2, 8


def _mixer(seed=0):
    torch.manual_seed(seed)
    return GatedAttention(D, H, n_kv_heads=H_KV, rope=RotaryEmbedding(DH, 10000.0)).double()


def test_matches_transformers_qwen3_next_attention():
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import (
        Qwen3NextAttention,
        Qwen3NextRotaryEmbedding,
    )

    hf_config = Qwen3NextConfig(
        hidden_size=D,
        num_attention_heads=H,
        num_key_value_heads=H_KV,
        head_dim=DH,
        rms_norm_eps=1e-6,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 1.0},
    )
    hf_config._attn_implementation = "sdpa"
    torch.manual_seed(1)
    hf = Qwen3NextAttention(hf_config, layer_idx=0).double().eval()
    with torch.no_grad():
        hf.q_norm.weight.normal_(0, 0.3)  # Qwen3Next's RMSNorm scales by (1 + weight), zero at init
        hf.k_norm.weight.normal_(0, 0.3)
    ours = _mixer()
    ours.load_state_dict(weights_from_qwen3_next(hf.state_dict(), H, DH))
    x = torch.randn(2, 9, D, dtype=torch.float64)
    cos_sin = Qwen3NextRotaryEmbedding(hf_config)(x, torch.arange(9)[None])
    with torch.no_grad():
        expected, _ = hf(x, position_embeddings=cos_sin, attention_mask=None)
        # the rotation angles are float32 in both, the rest float64
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-6)


def test_a_headwise_gate_is_an_elementwise_gate_that_is_constant_within_each_head():
    x = torch.randn(2, 6, D, dtype=torch.float64)
    elementwise = _mixer()
    torch.manual_seed(0)
    headwise = GatedAttention(
        D, H, n_kv_heads=H_KV, rope=RotaryEmbedding(DH, 10000.0), gate="headwise"
    ).double()
    state = elementwise.state_dict()
    state["gate_proj.weight"] = torch.randn(H, D, dtype=torch.float64)  # one gate row per head
    headwise.load_state_dict(state)
    state["gate_proj.weight"] = state["gate_proj.weight"].repeat_interleave(DH, dim=0)  # (H * Dh, D)
    elementwise.load_state_dict(state)
    torch.testing.assert_close(headwise(x), elementwise(x), rtol=1e-12, atol=1e-12)
    assert headwise.gate_proj.weight.numel() * DH == elementwise.gate_proj.weight.numel()


def test_cached_decoding_equals_the_full_forward():
    torch.manual_seed(0)
    model = GatedAttentionLM(
        Config(vocab_size=40, d_model=D, n_layers=2, n_heads=H, n_kv_heads=H_KV, d_ff=48)
    )
    model = model.double().eval()
    with torch.no_grad():
        assert_cached_equals_full(model, torch.randint(0, 40, (2, 8)), rtol=1e-10, atol=1e-10)


def test_registered():
    assert isinstance(bestiary.build("gated_attention", tiny=True), GatedAttentionLM)
