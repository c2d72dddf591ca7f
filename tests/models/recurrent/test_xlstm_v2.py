"""xLSTM 7B (xlstm_v2): equals transformers' xLSTMForCausalLM (which runs the `xlstm` package's
xLSTM-7B block with mlstm_kernels' native chunkwise kernel) with copied weights; the preset's
parameter count equals transformers' on the meta device; forms and cached decoding agree."""

import re

import pytest
import torch

import bestiary
from bestiary.models.recurrent.xlstm_v2 import HF_XLSTM_NAMES


def _hf_config(transformers, **overrides):
    # transformers rounds the q/k and v widths up to multiples of 64: d_model 128 keeps them exact
    config = dict(vocab_size=64, hidden_size=128, num_hidden_layers=2, num_heads=2, chunk_size=4)
    config |= dict(mode="inference")  # chunkwise kernels for any length, its step kernel with a cache
    return transformers.xLSTMConfig(**(config | overrides))


def _ours(**overrides):
    config = dict(vocab_size=64, d_model=128, n_layers=2, n_heads=2, d_ff=384, chunk_size=4) | overrides
    return bestiary.build("xlstm_v2", **config).double().eval()


def test_logits_equal_transformers_with_copied_weights():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.xLSTMForCausalLM(_hf_config(transformers)).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    ours = _ours()
    renamed = {}
    for name, tensor in hf.state_dict().items():
        for pattern, replacement in HF_XLSTM_NAMES:
            name = re.sub(pattern, replacement, name)
        renamed[name] = tensor
    assert set(renamed) == set(ours.state_dict())
    ours.load_state_dict(renamed)
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        theirs = hf(tokens, use_cache=False).logits.double()  # transformers returns float32 logits
        # ... and both RMSNorms reduce in float32: agreement at float32 level (~1e-6)
        torch.testing.assert_close(ours(tokens), theirs, rtol=1e-5, atol=1e-5)
        # decoding through the caches: our recurrent steps against transformers' step kernel
        # (its state is float32: inference_state_dtype)
        out, cache = hf(tokens[:, :4], use_cache=True), ours.init_cache(2)
        theirs_steps, ours_steps = [out.logits], [ours(tokens[:, :4], cache=cache)]
        for t in range(4, 9):
            out = hf(tokens[:, t : t + 1], cache=out.cache, use_cache=True)
            theirs_steps.append(out.logits)
            ours_steps.append(ours(tokens[:, t : t + 1], cache=cache))
        torch.testing.assert_close(
            torch.cat(ours_steps, 1), torch.cat(theirs_steps, 1).double(), rtol=1e-5, atol=1e-5
        )


def test_xlstm_7b_parameter_count_equals_transformers():
    transformers = pytest.importorskip("transformers")
    config = transformers.xLSTMConfig(vocab_size=50304, hidden_size=4096, num_hidden_layers=32, num_heads=8)
    with torch.device("meta"):
        hf = transformers.xLSTMForCausalLM(config)
        ours = bestiary.build("xlstm_7b")
    assert bestiary.count_params(ours) == sum(p.numel() for p in hf.parameters()) == 6_865_424_896


def test_modes_and_cached_decoding_agree():
    torch.manual_seed(0)
    model = _ours(d_model=32, d_ff=64)
    with torch.no_grad():  # gates away from their init so that they vary over time
        for block in model.blocks:
            block.mixer.input_gate.weight.normal_(std=0.5)
            block.mixer.forget_gate.weight.normal_(std=0.5)
    tokens = torch.randint(0, 64, (2, 9))
    full = model(tokens)
    for mode in ("parallel", "recurrent"):
        other = _ours(d_model=32, d_ff=64, mode=mode)
        other.load_state_dict(model.state_dict())
        torch.testing.assert_close(other(tokens), full, rtol=1e-10, atol=1e-10)
    with torch.no_grad():
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), full.detach(), rtol=1e-10, atol=1e-10)


def test_logits_are_soft_capped():
    model = _ours(d_model=32, d_ff=64)
    with torch.no_grad():
        model.lm_head.weight.mul_(1e4)
        tokens = torch.randint(0, 64, (1, 5))
        uncapped = model.lm_head(model.forward_features(tokens))
        logits = model(tokens)
    assert uncapped.abs().max() > 1000 and logits.abs().max() <= 30.0
    torch.testing.assert_close(logits, 30.0 * torch.tanh(uncapped / 30.0))
