"""Zamba against transformers' ZambaForCausalLM (weights copied through HF_ZAMBA_NAMES), the shared
block's reuse and its [x, embeddings] input, the multi-head Mamba mixer, cached decoding, preset."""

import pytest
import torch

import bestiary
from bestiary.llm.convert import load_weights
from bestiary.models.ssm.zamba import (
    ZAMBA_7B,
    Config,
    MultiHeadMambaMixer,
    shared_block_layers,
    zamba_state_dict,
)

transformers = pytest.importorskip("transformers")

# 8 layers (transformers' Zamba needs >= 6): the shared block is called at layers 2 and 5
OURS = dict(
    vocab_size=64, d_model=16, n_layers=8, n_heads=2, d_ff=24, attn_layer_period=3, attn_layer_offset=2
)


def _reference():
    config = transformers.ZambaConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=8,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=24,
        attn_layer_period=3,
        attn_layer_offset=2,
        n_mamba_heads=2,
        use_mamba_kernels=False,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    reference = transformers.ZambaForCausalLM(config).eval()
    with torch.no_grad():  # some tensors start at zero or one: make every one of them count
        for param in reference.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return reference


def test_logits_equal_transformers_zamba_with_copied_weights():
    reference = _reference()
    assert [i for i, t in enumerate(reference.config.layers_block_type) if t == "hybrid"] == [2, 5]
    model = bestiary.build("zamba", **OURS).eval()
    assert shared_block_layers(model.config) == {2, 5}
    load_weights(model, zamba_state_dict(reference.state_dict()))
    tokens = torch.randint(0, 64, (2, 9))
    with torch.no_grad():
        expected = reference(tokens, use_cache=False).logits
        torch.testing.assert_close(model(tokens), expected, atol=1e-4, rtol=1e-4)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :5], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(5, 9)
        ]
    torch.testing.assert_close(torch.cat(steps, 1), expected, atol=1e-4, rtol=1e-4)


def test_one_shared_block_its_input_is_hidden_state_and_embeddings():
    torch.manual_seed(0)
    model = bestiary.build("zamba", **OURS).double().eval()
    names = [n for n, _ in model.named_parameters() if "attention" in n]
    assert all(n.startswith("shared.") for n in names) and len(names) == 4  # q, k, v, out: once
    assert model.shared.attention.q_proj.in_features == 2 * 16
    seen = []
    model.shared.register_forward_hook(lambda mod, args, out: seen.append(args))
    tokens = torch.randint(0, 64, (1, 6))
    with torch.no_grad():
        model(tokens)
    assert len(seen) == 2  # called at both call sites
    embeddings = model.tok_embed(tokens)
    for _, e in seen:
        torch.testing.assert_close(e, embeddings)  # the original embeddings, at every depth
    assert not torch.allclose(seen[0][0], seen[1][0])  # and the hidden state of that depth


def test_mamba_heads_are_independent_ssms():
    """Changing head 1's x_proj leaves the channels of head 0 (before out_proj) untouched."""
    torch.manual_seed(0)
    mixer = MultiHeadMambaMixer(8, n_heads=2, d_state=4).double()
    captured = []
    mixer.out_proj.register_forward_hook(lambda mod, args, out: captured.append(args[0]))
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    mixer(x)
    with torch.no_grad():
        mixer.x_proj_weight[1].mul_(3.0)
    mixer(x)
    head = mixer.head_dim
    torch.testing.assert_close(captured[1][..., :head], captured[0][..., :head])
    assert not torch.allclose(captured[1][..., head:], captured[0][..., head:])


def test_preset_parameter_count_equals_transformers():
    with torch.device("meta"):
        reference = transformers.ZambaForCausalLM(transformers.ZambaConfig())  # defaults: Zamba-7B-v1
        model = bestiary.build("zamba", **ZAMBA_7B)
    expected = sum(p.numel() for p in reference.parameters())
    assert bestiary.count_params(model) == expected == bestiary.card("zamba").presets["zamba_7b"].params
    assert len(shared_block_layers(Config(**ZAMBA_7B))) == 13


def test_parallel_scan_equals_the_recurrence_in_values_and_gradients():
    torch.manual_seed(0)
    loop = MultiHeadMambaMixer(8, n_heads=2, d_state=4, scan="sequential").double()
    parallel = MultiHeadMambaMixer(8, n_heads=2, d_state=4, scan="hillis_steele").double()
    parallel.load_state_dict(loop.state_dict())
    x = torch.randn(2, 11, 8, dtype=torch.float64, requires_grad=True)
    y_loop, y_par = loop(x), parallel(x)
    torch.testing.assert_close(y_par, y_loop)
    (g_loop,) = torch.autograd.grad(y_loop.square().sum(), x)
    (g_par,) = torch.autograd.grad(y_par.square().sum(), x)
    torch.testing.assert_close(g_par, g_loop)
