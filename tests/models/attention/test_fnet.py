"""FNet against transformers' FNetModel with copied weights; the mixer against an explicit DFT."""

import math

import pytest
import torch

import bestiary
from bestiary.llm.convert import _rename, load_weights
from bestiary.models.attention.fnet import HF_FNET_NAMES, FourierMixer

transformers = pytest.importorskip("transformers")


def test_hidden_states_and_pooler_equal_fnet_model_with_copied_weights():
    config = transformers.FNetConfig(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        intermediate_size=64,
        max_position_embeddings=16,
        type_vocab_size=4,
        hidden_dropout_prob=0.0,
    )
    torch.manual_seed(0)
    reference = transformers.FNetModel(config).eval()
    model = bestiary.build(
        "fnet", vocab_size=64, d_model=32, n_layers=2, d_ff=64, max_seq_len=16, dropout=0.0
    )
    load_weights(model.eval(), _rename(reference.state_dict(), HF_FNET_NAMES))
    tokens, segments = torch.randint(0, 64, (2, 10)), torch.randint(0, 4, (2, 10))
    with torch.no_grad():
        expected = reference(tokens, token_type_ids=segments)
        hidden = model(tokens, token_type_ids=segments)
        torch.testing.assert_close(hidden, expected.last_hidden_state, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(model.pool(hidden), expected.pooler_output, atol=1e-5, rtol=1e-5)


def test_fourier_mixing_is_the_real_part_of_two_explicit_dfts():
    x = torch.randn(2, 6, 5, dtype=torch.float64)

    def dft(n):  # F[j, k] = exp(-2 pi i j k / n)
        j = torch.arange(n, dtype=torch.float64)
        return torch.exp(-2j * math.pi * torch.outer(j, j) / n)

    expected = (dft(6) @ x.to(torch.complex128) @ dft(5).T).real  # over the sequence, over the hidden dim
    torch.testing.assert_close(FourierMixer()(x), expected)


def test_every_position_reads_every_other_and_there_is_nothing_to_cache():
    model = bestiary.build("fnet", tiny=True).eval()
    tokens = torch.randint(0, 64, (1, 8))
    changed = tokens.clone()
    changed[0, -1] = (changed[0, -1] + 1) % 64  # change the last token only
    with torch.no_grad():
        assert not torch.allclose(model(tokens)[0, 0], model(changed)[0, 0])  # the first position sees it
    with pytest.raises(ValueError, match="bidirectional"):
        FourierMixer().init_cache(1)


def test_preset_matches_fnet_base():
    config = transformers.FNetConfig()  # google/fnet-base
    with torch.device("meta"):
        reference = transformers.FNetModel(config)
    assert bestiary.card("fnet").presets["fnet_base"].params == sum(p.numel() for p in reference.parameters())
