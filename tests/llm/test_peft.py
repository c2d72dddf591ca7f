"""Adapters wrap a model's Linear layers from outside: LoRA against `peft`, merging, freezing."""

import copy

import pytest
import torch

import bestiary
from bestiary.llm.peft import LoRALinear, apply_lora, merge_adapters, wrap_linears


def _model():
    torch.manual_seed(0)
    return bestiary.build("decoder_only", tiny=True)


def _randomize_lora_b(model):
    """B starts at zero (the adapter starts as a no-op); give it values so the update shows."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LoRALinear):
                module.lora_B.weight.normal_(std=0.1)


def test_lora_matches_peft_with_copied_weights():
    peft = pytest.importorskip("peft")
    base = _model().eval()
    reference = peft.inject_adapter_in_model(
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_dropout=0.0),
        copy.deepcopy(base),
    ).eval()
    ours = copy.deepcopy(base)
    names = apply_lora(ours, ("q_proj", "v_proj"), rank=4, alpha=8)
    assert names == [f"blocks.{i}.mixer.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    with torch.no_grad():
        for name in names:
            ref_layer, our_layer = reference.get_submodule(name), ours.get_submodule(name)
            ref_layer.lora_B["default"].weight.normal_(std=0.1)
            our_layer.lora_A.weight.copy_(ref_layer.lora_A["default"].weight)
            our_layer.lora_B.weight.copy_(ref_layer.lora_B["default"].weight)
    tokens = torch.randint(0, 64, (2, 12))
    with torch.no_grad():
        expected = reference(tokens)
        torch.testing.assert_close(ours.eval()(tokens), expected, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(base(tokens), expected, atol=1e-3)  # the adapters do change the output


def test_a_fresh_adapter_is_a_no_op_and_only_adapters_train():
    base = _model()
    adapted = copy.deepcopy(base)
    apply_lora(adapted, "q_proj", rank=2)
    tokens = torch.randint(0, 64, (2, 10))
    torch.testing.assert_close(adapted(tokens), base(tokens))  # B = 0 at the start
    trainable = {n for n, p in adapted.named_parameters() if p.requires_grad}
    assert trainable == {f"blocks.{i}.mixer.q_proj.lora_{m}.weight" for i in range(2) for m in "AB"}
    before = {n: p.detach().clone() for n, p in adapted.named_parameters()}
    optimizer = torch.optim.SGD([p for p in adapted.parameters() if p.requires_grad], lr=0.1)
    adapted(tokens).logsumexp(-1).mean().backward()  # training mode: gradients reach the adapters
    optimizer.step()
    changed = {n for n, p in adapted.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= trainable


def test_merging_gives_plain_linears_with_the_same_function():
    model = _model().eval()
    apply_lora(model, ("q_proj", "v_proj", "down"), rank=3, alpha=6)
    _randomize_lora_b(model)
    tokens = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        adapted = model(tokens)
        merged_names = merge_adapters(model)
        assert len(merged_names) == 6
        assert not any(isinstance(m, LoRALinear) for m in model.modules())
        torch.testing.assert_close(model(tokens), adapted, atol=1e-5, rtol=1e-5)


def test_no_match_is_an_error_that_names_the_layers_and_changes_nothing():
    model = _model()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"q_proj"):
        wrap_linears(model, "query", lambda linear: LoRALinear(linear, 2))
    assert model.state_dict().keys() == state.keys()
    with pytest.raises(ValueError, match="rank"):
        apply_lora(model, "q_proj", rank=0)


def test_adapted_layers_decode_with_the_cache():
    model = _model().eval()
    apply_lora(model, "k_proj", rank=2)
    _randomize_lora_b(model)
    tokens = torch.randint(0, 64, (1, 8))
    with torch.no_grad():
        cache = model.init_cache(1)
        steps = [model(tokens[:, :3], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(3, 8)
        ]
        torch.testing.assert_close(torch.cat(steps, dim=1), model(tokens), atol=1e-5, rtol=1e-5)
