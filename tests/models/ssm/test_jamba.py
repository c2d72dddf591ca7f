"""Jamba against transformers' JambaForCausalLM (weights copied through HF_JAMBA_NAMES), its layer
pattern, its Mamba layers' inner norms, cached decoding, and the preset's parameter count."""

import pytest
import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.moe import MoE
from bestiary.llm.convert import load_weights
from bestiary.models.ssm.jamba import JAMBA_V0_1, JambaMambaMixer, jamba_state_dict

transformers = pytest.importorskip("transformers")

OURS = dict(
    vocab_size=64,
    d_model=32,
    n_layers=4,
    n_heads=4,
    n_kv_heads=2,
    d_ff=24,
    attn_layer_period=4,
    attn_layer_offset=2,
    expert_layer_period=2,
    expert_layer_offset=1,
    n_experts=4,
    top_k=2,
    d_state=8,
)


def _reference():
    config = transformers.JambaConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=24,
        attn_layer_period=4,
        attn_layer_offset=2,
        expert_layer_period=2,
        expert_layer_offset=1,
        num_experts=4,
        num_experts_per_tok=2,
        mamba_d_state=8,
        use_mamba_kernels=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    reference = transformers.JambaForCausalLM(config).eval()
    with torch.no_grad():  # norms start at one, experts at zero in some inits: make every tensor count
        for param in reference.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return reference


def test_logits_equal_transformers_jamba_with_copied_weights():
    reference = _reference()
    model = bestiary.build("jamba", **OURS).eval()
    load_weights(model, jamba_state_dict(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        expected = reference(tokens, use_cache=False).logits
        torch.testing.assert_close(model(tokens), expected, atol=1e-4, rtol=1e-4)
        cache = model.init_cache(2)  # and through our cache, token by token after a prompt
        steps = [model(tokens[:, :6], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(6, 10)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), expected, atol=1e-4, rtol=1e-4)


def test_layer_pattern_follows_the_periods_and_offsets():
    model = bestiary.build("jamba", **{**OURS, "n_layers": 8})
    mixers = ["A" if isinstance(b.mixer, MultiHeadAttention) else "M" for b in model.blocks]
    mlps = ["E" if isinstance(b.mlp, MoE) else "d" for b in model.blocks]
    assert "".join(mixers) == "MMAMMMAM"
    assert "".join(mlps) == "dEdEdEdE"
    assert all(isinstance(b.mixer, JambaMambaMixer) for b, m in zip(model.blocks, mixers) if m == "M")
    assert model.blocks[2].mixer.rope is None  # no positional encoding anywhere


def test_mamba_layers_normalise_dt_b_and_c():
    """Scaling x_proj's output scales dt_low, B and C; the RMSNorms make the layer blind to that."""
    torch.manual_seed(0)
    mixer = JambaMambaMixer(16, d_state=4, norm_eps=1e-30).double()  # eps ~ 0: exact invariance
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    before = mixer(x)
    with torch.no_grad():
        mixer.x_proj.weight.mul_(7.0)
    torch.testing.assert_close(mixer(x), before)


def test_aux_loss_sums_the_moe_layers():
    torch.manual_seed(0)
    model = bestiary.build("jamba", **OURS)
    model(torch.randint(0, 64, (2, 5)))
    moes = [b.mlp for b in model.blocks if isinstance(b.mlp, MoE)]
    assert len(moes) == 2
    torch.testing.assert_close(model.aux_loss(), moes[0].aux_loss + moes[1].aux_loss)


def test_preset_parameter_count_equals_transformers():
    with torch.device("meta"):
        reference = transformers.JambaForCausalLM(transformers.JambaConfig())  # the defaults are v0.1's
        model = bestiary.build("jamba", **JAMBA_V0_1)
    expected = sum(p.numel() for p in reference.parameters())
    assert bestiary.count_params(model) == expected == bestiary.card("jamba").presets["jamba_v0_1"].params


@pytest.mark.parametrize("scan", ["cumsum", "hillis_steele"])
def test_parallel_scans_equal_the_recurrence_in_values_and_gradients(scan):
    torch.manual_seed(0)
    loop = bestiary.build("jamba", **OURS, scan="sequential").double()
    parallel = bestiary.build("jamba", **OURS, scan=scan).double()
    parallel.load_state_dict(loop.state_dict())
    tokens = torch.randint(0, 64, (2, 13))
    y_loop, y_par = loop(tokens), parallel(tokens)
    torch.testing.assert_close(y_par, y_loop)
    y_loop.square().sum().backward()
    y_par.square().sum().backward()
    for (name, p_loop), p_par in zip(loop.named_parameters(), parallel.parameters()):
        torch.testing.assert_close(p_par.grad, p_loop.grad, msg=name)
