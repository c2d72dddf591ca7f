"""Real pretrained weights in our implementations match `transformers` (offline packages).

SmolLM2-135M-Instruct: our decoder_only (Llama) vs transformers' LlamaForCausalLM, both loading
the same cached fp32 safetensors (converted once from the package's GGUF by transformers).
all-MiniLM-L6-v2: our BERT encoder + mean pooling vs transformers' BertModel + the same pooling.
"""

import pytest
import torch
import torch.nn.functional as F

pytestmark = pytest.mark.pretrained
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def smollm2():
    pytest.importorskip("gguf")
    from bestiary.llm import load_smollm2, smollm2_files

    try:
        folder = smollm2_files()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    return load_smollm2(), folder


def test_smollm2_matches_transformers_logits(smollm2):
    (model, tokenizer), folder = smollm2
    assert model.config.n_layers == 30 and model.config.d_model == 576 and model.config.vocab_size == 49152
    ids = torch.tensor([tokenizer.encode("The capital of France is Paris. The capital of Italy is")])
    reference = transformers.LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        ours, ref = model(ids), reference(ids).logits
    # logits are O(10-30); float32 through 30 layers in a different op order: 1e-3 absolute
    torch.testing.assert_close(ours, ref, atol=1e-3, rtol=1e-4)
    assert tokenizer.decode(ours[0, -1].argmax()).strip() == "Rome"


def test_smollm2_preset_matches_the_published_config(smollm2):
    """The preset equals the config transformers read from the GGUF metadata (block_count 30,
    embedding_length 576, head_count 9 / kv 3, feed_forward_length 1536, rope.freq_base 1e5)."""
    import json

    import bestiary
    from bestiary.llm.convert import llama_config

    _, folder = smollm2
    published = llama_config(json.loads((folder / "config.json").read_text()))
    preset = bestiary.config("smollm2_135m")
    for key, value in published.items():
        if key == "head_dim":
            assert value in (None, preset.d_model // preset.n_heads)
        elif key == "norm_eps":
            assert getattr(preset, key) == pytest.approx(value)
        else:
            assert getattr(preset, key) == value, key


def test_smollm2_cached_generation_matches_uncached(smollm2):
    (model, tokenizer), _ = smollm2
    ids = torch.tensor([tokenizer.encode("Once upon a time")])
    with torch.no_grad():
        full = model(ids)
        cache = model.init_cache(ids.shape[0])
        steps = torch.cat([model(ids[:, :2], cache=cache), model(ids[:, 2:], cache=cache)], dim=1)
    torch.testing.assert_close(steps, full, atol=1e-4, rtol=1e-4)


def test_minilm_sentence_embeddings_match_transformers():
    from bestiary.llm import load_minilm, sentence_embeddings
    from bestiary.llm.minilm import minilm_path

    try:
        model, tokenizer = load_minilm()
    except FileNotFoundError as err:
        pytest.skip(str(err))
    texts = ["A cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly revenue grew by 4%."]
    ours = sentence_embeddings(model, tokenizer, texts)
    hf = transformers.AutoModel.from_pretrained(str(minilm_path())).eval()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = hf(**batch).last_hidden_state
    weights = batch["attention_mask"][..., None].float()
    expected = F.normalize((hidden * weights).sum(1) / weights.sum(1), dim=-1)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-4)
    sims = ours @ ours.T
    assert sims[0, 1] > sims[0, 2] + 0.3  # the two cat sentences are closer than the revenue one
