"""Class 2 of the robustness issue: inputs are checked at the model boundary, so a bad id or an
integer image gets an error that names it, instead of an opaque index error deep inside torch
(or a device-side assert on a GPU). The registry sweep checks every token and image model; these
are the cases around generation and language models."""

import pytest
import torch

import bestiary
from bestiary.generation import beam_search, generate


@pytest.fixture
def lm():
    return bestiary.build("decoder_only", tiny=True).eval()  # vocab_size 64


def test_a_prompt_with_an_id_past_the_vocabulary_names_it(lm):
    with pytest.raises(ValueError, match=r"tokens\[0, 2\] = 64 is not a token id .* 64 ids \(0..63\)"):
        generate(lm, [1, 2, 64], 3)
    with pytest.raises(ValueError, match=r"= 500 is not a token id"):
        beam_search(lm, [500], beam_width=2, max_new_tokens=2)


def test_a_prompt_of_floats_is_refused_not_truncated(lm):
    with pytest.raises(ValueError, match="long token ids"):
        generate(lm, torch.tensor([1.0, 2.7]), 3)
    with pytest.raises(TypeError, match="integer token ids"):
        lm(torch.tensor([[1.0, 2.7]]))


def test_a_language_model_around_a_backbone_checks_ids_too():
    model = bestiary.build_lm("tcn", vocab_size=10, tiny=True).eval()
    with pytest.raises(ValueError, match=r"= 10 is not a token id of this model: the vocabulary has 10 ids"):
        model(torch.tensor([[1, 10]]))


def test_cached_decoding_checks_each_new_token(lm):
    cache = lm.init_cache(1)
    lm(torch.tensor([[1, 2, 3]]), cache=cache)
    with pytest.raises(ValueError, match="= 99 is not a token id"):
        lm(torch.tensor([[99]]), cache=cache)
    assert len(cache) == 3  # the refused step did not advance the cache


def test_encoder_decoder_checks_source_and_target():
    model = bestiary.build("encoder_decoder", tiny=True).eval()  # vocab_size 64
    src, tgt = torch.randint(0, 64, (1, 5)), torch.randint(0, 64, (1, 4))
    with pytest.raises(ValueError, match=r"src\[0, 1\] = 64"):
        model(src.index_fill(1, torch.tensor([1]), 64), tgt)
    with pytest.raises(ValueError, match=r"tgt\[0, 0\] = -3"):
        model(src, tgt.index_fill(1, torch.tensor([0]), -3))


def test_an_integer_image_says_how_to_convert_it():
    model = bestiary.build("resnet", tiny=True).eval()
    with pytest.raises(TypeError, match=r"x.float\(\) / 255"):
        model(torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8))
