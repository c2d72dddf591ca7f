"""Mamba LM: logits equal transformers' MambaForCausalLM (pure-PyTorch path) with our weights
copied through HF_MAMBA_NAMES, cached decoding included; the preset's size equals transformers'."""

import pytest
import torch
from mamba_helpers import copy_into_reference, tokens

import bestiary
from bestiary.models.ssm.mamba import HF_MAMBA_NAMES

TINY = dict(vocab_size=64, d_model=16, n_layers=2, d_state=4)
# transformers casts x and the norms to float32 inside its float64 model: agreement to ~1e-7
TOLERANCE = dict(atol=1e-6, rtol=1e-5)


def _pair():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = bestiary.build("mamba", **TINY).double().eval()
    config = transformers.MambaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, state_size=4, expand=2, conv_kernel=4
    )
    reference = transformers.MambaForCausalLM(config).double().eval()
    copy_into_reference(ours, reference, HF_MAMBA_NAMES)
    return ours, reference


def test_logits_equal_transformers_with_copied_weights():
    ours, reference = _pair()
    x = tokens(64)
    with torch.no_grad():
        expected = reference(x).logits.double()  # transformers returns float32 logits
        torch.testing.assert_close(ours(x), expected, **TOLERANCE)
        assert expected.std() > 0.05  # not a trivially small output


def test_cached_decoding_equals_transformers_cached_decoding():
    ours, reference = _pair()
    x = tokens(64, length=10)
    with torch.no_grad():
        out = reference(x[:, :4], use_cache=True)
        expected = [out.logits] + [
            reference(x[:, t : t + 1], cache=out.cache, use_cache=True).logits for t in range(4, 10)
        ]
        cache = ours.init_cache(2)
        got = [ours(x[:, :4], cache=cache)] + [ours(x[:, t : t + 1], cache=cache) for t in range(4, 10)]
    torch.testing.assert_close(torch.cat(got, 1), torch.cat(expected, 1).double(), **TOLERANCE)


def test_preset_parameter_count_equals_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.MambaConfig(vocab_size=50280, hidden_size=768, num_hidden_layers=24, state_size=16)
    with torch.device("meta"):
        reference = transformers.MambaForCausalLM(config)
        ours = bestiary.build("mamba_130m")
    expected = sum(p.numel() for p in reference.parameters())
    assert bestiary.count_params(ours) == expected == bestiary.card("mamba_130m").presets["mamba_130m"].params


def test_the_default_scan_is_the_loop():
    model = bestiary.build("mamba", **TINY)
    assert all(block.mixer.scan == "sequential" for block in model.blocks)
