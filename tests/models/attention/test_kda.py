"""KDA (Kimi Delta Attention): the oracle is transformers' KimiLinear KDA layer (its pure-PyTorch
path) with our weights copied in; the chunkwise form equals the recurrence (outputs and gradients);
the cache continues the sequence; the decay really is per channel."""

import torch

import bestiary
from bestiary.models.attention.kda import Config, KimiDeltaAttention

D, H = 16, 2


def _mixer(mode="chunkwise", chunk_size=4):
    return KimiDeltaAttention(Config(d_model=D, n_heads=H, kernel_size=3, mode=mode, chunk_size=chunk_size))


def _randomize(module, scale=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * scale)
    return module


def test_chunkwise_equals_recurrent_outputs_and_gradients():
    torch.manual_seed(0)
    recurrent = _randomize(_mixer("recurrent")).double()
    x = torch.randn(2, 11, D, dtype=torch.float64)
    weights = torch.linspace(-1, 1, D, dtype=torch.float64)
    y_ref = recurrent(x)
    grads_ref = torch.autograd.grad((y_ref * weights).sum(), list(recurrent.parameters()))
    for chunk_size in (3, 4, 16):  # 3 and 4 do not divide T = 11
        chunked = _mixer("chunkwise", chunk_size).double()
        chunked.load_state_dict(recurrent.state_dict())
        y = chunked(x)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
        grads = torch.autograd.grad((y * weights).sum(), list(chunked.parameters()))
        for g, g_ref in zip(grads, grads_ref):
            torch.testing.assert_close(g, g_ref, rtol=1e-9, atol=1e-10)


def test_cache_steps_equal_the_full_sequence():
    torch.manual_seed(0)
    mixer = _randomize(_mixer()).double()
    x = torch.randn(2, 10, D, dtype=torch.float64)
    with torch.no_grad():
        full = mixer(x)
        cache = mixer.init_cache(2)
        pieces = [mixer(x[:, :5], cache=cache), mixer(x[:, 5:7], cache=cache)]
        pieces += [mixer(x[:, t : t + 1], cache=cache) for t in range(7, 10)]
    torch.testing.assert_close(torch.cat(pieces, 1), full, rtol=1e-10, atol=1e-10)


def _kimi_layer(ours):
    from transformers import KimiLinearConfig
    from transformers.models.kimi_linear.modeling_kimi_linear import KimiLinearDeltaAttention

    config = KimiLinearConfig(
        hidden_size=D,
        linear_attn_config=dict(head_dim=D // H, num_heads=H, short_conv_kernel_size=3),
        hidden_act="silu",
        rms_norm_eps=ours.out_norm.eps,
        num_hidden_layers=1,
        layer_types=["linear_attention"],
        mlp_layer_types=["dense"],
    )
    layer = KimiLinearDeltaAttention(config, layer_idx=0)
    pairs = {
        layer.q_proj.weight: ours.q_proj.weight,
        layer.k_proj.weight: ours.k_proj.weight,
        layer.v_proj.weight: ours.v_proj.weight,
        layer.b_proj.weight: ours.b_proj.weight,
        layer.conv1d.weight: ours.conv.conv.weight,
        layer.forget_gate.f_a_proj.weight: ours.decay_down.weight,
        layer.forget_gate.f_b_proj.weight: ours.decay_up.weight,
        layer.forget_gate.dt_bias: ours.dt_bias,
        layer.forget_gate.A_log: ours.A_log.view(1, 1, H, 1),
        layer.g_a_proj.weight: ours.gate_down.weight,
        layer.g_b_proj.weight: ours.gate_up.weight,
        layer.o_norm.weight: ours.out_norm.weight,
        layer.o_proj.weight: ours.out_proj.weight,
    }
    with torch.no_grad():
        for theirs, mine in pairs.items():
            theirs.copy_(mine)
    return layer


def test_oracle_transformers_kimi_linear_delta_attention():
    """Float32 (the reference computes its kernel in float32); tolerance 1e-5 absolute."""
    torch.manual_seed(0)
    ours = _randomize(_mixer(chunk_size=8), scale=0.5)
    reference = _kimi_layer(ours)
    x = torch.randn(2, 21, D)  # 21: not a multiple of either chunk size (ours 8, theirs 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-5)


def test_decay_differs_across_channels_of_a_head():
    """The point of KDA: with a per-channel gate, two channels of one key forget at different rates
    (a per-head scalar gate would give identical columns of alpha)."""
    torch.manual_seed(0)
    mixer = bestiary.build("kda", tiny=True).blocks[0].mixer
    x = torch.randn(1, 3, 32)
    rate = torch.nn.functional.softplus(mixer.decay_up(mixer.decay_down(x)) + mixer.dt_bias).view(1, 3, 2, 16)
    assert rate.std(dim=-1).min() > 0


def test_language_model_cache_steps_equal_full():
    torch.manual_seed(0)
    model = bestiary.build("kda", tiny=True).eval()
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-4, atol=1e-5)
