"""Gated DeltaNet: the oracle is transformers' Qwen3-Next GatedDeltaNet layer (its pure-PyTorch
path) with our weights copied in; the chunkwise form equals the recurrence; the cache continues."""

import torch
from delta_helpers import assert_cache_steps_equal_full, assert_chunkwise_equals_recurrent, randomize

import bestiary
from bestiary.models.recurrent.gated_delta_net import Config, GatedDeltaNetMixer

D, H = 16, 2


def _mixer(mode="chunkwise", chunk_size=4):
    return GatedDeltaNetMixer(Config(d_model=D, n_heads=H, kernel_size=3, mode=mode, chunk_size=chunk_size))


def test_chunkwise_equals_recurrent_outputs_and_gradients():
    assert_chunkwise_equals_recurrent(_mixer, D)


def test_cache_steps_equal_the_full_sequence():
    assert_cache_steps_equal_full(_mixer(), D)


def _qwen3_next_layer(ours):
    """transformers' Qwen3NextGatedDeltaNet with our weights. Its fused projections interleave per
    head: in_proj_qkvz rows are [q_h, k_h, v_h, z_h] for each head h, in_proj_ba rows [b_h, a_h]."""
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextGatedDeltaNet

    d = D // H
    config = Qwen3NextConfig(
        hidden_size=D,
        linear_num_value_heads=H,
        linear_num_key_heads=H,
        linear_key_head_dim=d,
        linear_value_head_dim=d,
        linear_conv_kernel_dim=3,
        hidden_act="silu",
        rms_norm_eps=ours.out_norm.eps,
        num_hidden_layers=1,
        layer_types=["linear_attention"],
    )
    layer = Qwen3NextGatedDeltaNet(config, layer_idx=0)
    per_head = [p.weight.view(H, d, D) for p in (ours.q_proj, ours.k_proj, ours.v_proj, ours.z_proj)]
    with torch.no_grad():
        layer.in_proj_qkvz.weight.copy_(torch.cat(per_head, dim=1).reshape(4 * H * d, D))
        layer.in_proj_ba.weight.copy_(
            torch.stack([ours.b_proj.weight, ours.a_proj.weight], 1).reshape(2 * H, D)
        )
        layer.conv1d.weight.copy_(ours.conv.conv.weight)
        layer.A_log.copy_(ours.A_log)
        layer.dt_bias.copy_(ours.dt_bias)
        layer.norm.weight.copy_(ours.out_norm.weight)
        layer.out_proj.weight.copy_(ours.out_proj.weight)
    return layer


def test_oracle_transformers_qwen3_next_gated_delta_net():
    """Float32 (the reference computes its kernel in float32); tolerance 1e-5 absolute."""
    torch.manual_seed(0)
    ours = randomize(_mixer(chunk_size=8), scale=0.5)
    reference = _qwen3_next_layer(ours)
    x = torch.randn(2, 21, D)  # 21: not a multiple of either chunk size (ours 8, theirs 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_language_model_cache_steps_equal_full():
    torch.manual_seed(0)
    model = bestiary.build("gated_delta_net", tiny=True).eval()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)


def test_the_forgetting_gate_is_mamba2s_decay_in_zero_one():
    torch.manual_seed(0)
    model = bestiary.build("gated_delta_net", tiny=True)
    mixer = model.blocks[0].mixer
    assert torch.all((mixer.A_log.exp() >= 1) & (mixer.A_log.exp() <= 16))  # init_weights ran
    dt = torch.nn.functional.softplus(mixer.dt_bias)
    assert torch.all((dt > 1e-3 - 1e-6) & (dt < 0.1 + 1e-6))
