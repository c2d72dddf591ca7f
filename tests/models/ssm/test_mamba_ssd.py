"""Mamba-2 (SSD) LM: logits equal transformers' Mamba2ForCausalLM (pure-PyTorch path) with our
weights copied through HF_MAMBA2_NAMES; the chunked SSD model equals the recurrent one; the
preset's size equals transformers'. (Mixer-level form tests: tests/layers/test_mamba_mixer.py.)"""

import pytest
import torch
from mamba_helpers import copy_into_reference, tokens

import bestiary
from bestiary.models.ssm.mamba_ssd import HF_MAMBA2_NAMES

TINY = dict(vocab_size=64, d_model=16, n_layers=2, d_state=8, head_dim=8, n_groups=2, chunk_size=4)
# transformers runs its SSD in float32 whatever the model's dtype: agreement to ~1e-6
TOLERANCE = dict(atol=2e-5, rtol=1e-4)


def _pair():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    ours = bestiary.build("mamba_ssd", **TINY).double().eval()
    config = transformers.Mamba2Config(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=2,
        state_size=8,
        num_heads=4,
        head_dim=8,
        n_groups=2,
        expand=2,
        conv_kernel=4,
        chunk_size=4,
        tie_word_embeddings=True,
    )
    reference = transformers.Mamba2ForCausalLM(config).double().eval()
    copy_into_reference(ours, reference, HF_MAMBA2_NAMES)
    return ours, reference


def test_logits_equal_transformers_with_copied_weights():
    ours, reference = _pair()
    x = tokens(64, length=11)  # not a multiple of the chunk: the last chunk is padded
    with torch.no_grad():
        expected = reference(x).logits.double()
        torch.testing.assert_close(ours(x), expected, **TOLERANCE)
        assert expected.std() > 0.05


def test_cached_decoding_equals_transformers_cached_decoding():
    ours, reference = _pair()
    x = tokens(64, length=10)
    with torch.no_grad():
        out = reference(x[:, :6], use_cache=True)
        expected = [out.logits] + [
            reference(x[:, t : t + 1], cache=out.cache, use_cache=True).logits for t in range(6, 10)
        ]
        cache = ours.init_cache(2)
        got = [ours(x[:, :6], cache=cache)] + [ours(x[:, t : t + 1], cache=cache) for t in range(6, 10)]
    torch.testing.assert_close(torch.cat(got, 1), torch.cat(expected, 1).double(), **TOLERANCE)


@pytest.mark.parametrize("chunk_size", [3, 4, 16])
def test_chunked_model_equals_recurrent_model_outputs_and_gradients(chunk_size):
    x = tokens(64, length=13)
    results = []
    for mode in ("recurrent", "chunked"):
        torch.manual_seed(0)
        model = bestiary.build("mamba_ssd", **{**TINY, "chunk_size": chunk_size}, mode=mode).double()
        logits = model(x)
        logits.logsumexp(-1).sum().backward()
        results.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (ref_logits, ref_grads), (logits, grads) = results
    torch.testing.assert_close(logits, ref_logits)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, msg=name)


def test_preset_parameter_count_equals_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.Mamba2Config(
        vocab_size=50288,
        hidden_size=768,
        num_hidden_layers=24,
        state_size=128,
        num_heads=24,
        head_dim=64,
        n_groups=1,
        expand=2,
        chunk_size=256,
        tie_word_embeddings=True,
    )
    with torch.device("meta"):
        reference = transformers.Mamba2ForCausalLM(config)
        ours = bestiary.build("mamba2_130m")
    expected = sum(p.numel() for p in reference.parameters())
    assert (
        bestiary.count_params(ours) == expected == bestiary.card("mamba2_130m").presets["mamba2_130m"].params
    )


def test_heads_that_do_not_divide_are_refused_by_name():
    with pytest.raises(bestiary.ConfigError, match="multiple of head_dim"):
        bestiary.build("mamba_ssd", **{**TINY, "head_dim": 7})
    with pytest.raises(bestiary.ConfigError, match="n_groups=3"):
        bestiary.build("mamba_ssd", **{**TINY, "n_groups": 3})
