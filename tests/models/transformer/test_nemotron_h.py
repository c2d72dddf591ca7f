"""Nemotron-H against transformers' NemotronHForCausalLM (weights copied through HF_NEMOTRON_H_NAMES),
its layer pattern, cached decoding, and the 8B preset's parameter count."""

import re

import pytest
import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.mamba import Mamba2Mixer
from bestiary.llm.convert import load_weights
from bestiary.models.transformer.nemotron_h import HF_NEMOTRON_H_NAMES, NEMOTRON_H_8B, PositionwiseMLP

transformers = pytest.importorskip("transformers")

KINDS = {"M": "linear_attention", "*": "full_attention", "-": "mlp"}
PATTERN = "M-M*-M"
OURS = dict(
    vocab_size=64,
    d_model=16,
    n_layers=6,
    pattern=PATTERN,
    n_heads=2,
    n_kv_heads=1,
    head_dim=8,
    d_ff=24,
    d_state=4,
    ssm_head_dim=8,
    n_groups=2,
    chunk_size=4,
)


def _hf_config(pattern, **overrides):
    return transformers.NemotronHConfig(layers_block_type=[KINDS[k] for k in pattern], **overrides)


def _rename(hf):
    out = {}
    for name, tensor in hf.items():
        pattern, replacement = next((p, r) for p, r in HF_NEMOTRON_H_NAMES if re.fullmatch(p, name))
        out[re.sub(pattern, replacement, name)] = tensor
    return out


def test_logits_equal_transformers_nemotron_h_with_copied_weights():
    config = _hf_config(
        PATTERN,
        vocab_size=64,
        hidden_size=16,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=8,
        intermediate_size=24,
        ssm_state_size=4,
        mamba_num_heads=4,
        mamba_head_dim=8,
        n_groups=2,
        chunk_size=4,
        use_mamba_kernels=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    reference = transformers.NemotronHForCausalLM(config).eval()
    with torch.no_grad():  # norms start at one, D at one: make every tensor count
        for param in reference.parameters():
            param.add_(0.05 * torch.randn_like(param))
    model = bestiary.build("nemotron_h", **OURS).eval()
    load_weights(model, _rename(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 11))  # nearly three SSD chunks of 4
    with torch.no_grad():
        expected = reference(tokens, use_cache=False).logits
        torch.testing.assert_close(model(tokens), expected, atol=1e-4, rtol=1e-4)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :6], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(6, 11)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), expected, atol=1e-4, rtol=1e-4)


def test_layers_follow_the_pattern_and_mlp_layers_mix_no_positions():
    torch.manual_seed(0)
    model = bestiary.build("nemotron_h", **OURS).double().eval()
    kinds = {Mamba2Mixer: "M", MultiHeadAttention: "*", PositionwiseMLP: "-"}
    assert "".join(kinds[type(b.mixer)] for b in model.blocks) == PATTERN
    assert all(b.mlp is None for b in model.blocks)  # each layer is ONE residual step
    mlp = model.blocks[1].mixer
    x = torch.randn(1, 5, 16, dtype=torch.float64)
    y = mlp(x)
    torch.testing.assert_close(y[:, 2], mlp(x[:, 2:3])[:, 0])  # one position alone gives the same
    torch.testing.assert_close(y, mlp.down(torch.relu(mlp.up(x)) ** 2))  # squared ReLU, no gate


def test_pattern_length_and_letters_are_checked():
    with pytest.raises(bestiary.ConfigError, match="must have n_layers=5 letters"):
        bestiary.build("nemotron_h", **{**OURS, "n_layers": 5})
    with pytest.raises(bestiary.ConfigError, match=r"pattern='M-MEM-' is not allowed.*'\*' \(attention\)"):
        bestiary.build("nemotron_h", **{**OURS, "pattern": "M-MEM-"})


def test_preset_parameter_count_equals_transformers():
    hf = _hf_config(
        NEMOTRON_H_8B["pattern"],
        vocab_size=131072,
        hidden_size=4096,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=128,
        intermediate_size=21504,
        ssm_state_size=128,
        mamba_num_heads=128,
        mamba_head_dim=64,
        n_groups=8,
    )
    with torch.device("meta"):
        reference = transformers.NemotronHForCausalLM(hf)
        model = bestiary.build("nemotron_h", **NEMOTRON_H_8B)
    expected = sum(p.numel() for p in reference.parameters())
    assert (
        bestiary.count_params(model)
        == expected
        == bestiary.card("nemotron_h").presets["nemotron_h_8b"].params
    )


def test_chunked_ssd_equals_the_recurrence_in_values_and_gradients():
    torch.manual_seed(0)
    recurrent = bestiary.build("nemotron_h", **OURS, ssd_mode="recurrent").double()
    chunked = bestiary.build("nemotron_h", **OURS, ssd_mode="chunked").double()
    chunked.load_state_dict(recurrent.state_dict())
    tokens = torch.randint(0, 64, (2, 11))
    y_rec, y_chunk = recurrent(tokens), chunked(tokens)
    torch.testing.assert_close(y_chunk, y_rec)
    y_rec.square().sum().backward()
    y_chunk.square().sum().backward()
    for (name, p_rec), p_chunk in zip(recurrent.named_parameters(), chunked.parameters()):
        torch.testing.assert_close(p_chunk.grad, p_rec.grad, msg=name)
