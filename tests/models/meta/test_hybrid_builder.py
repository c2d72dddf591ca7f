"""The pattern-string hybrid builder: layer types follow the pattern, a mixed stack decodes through
its caches exactly as it runs whole, unknown letters are refused by name."""

import pytest
import torch

import bestiary
from bestiary.layers.attention import MultiHeadAttention
from bestiary.layers.mamba import Mamba2Mixer, MambaMixer
from bestiary.layers.rg_lru import RecurrentBlock
from bestiary.layers.rnn import GRUMixer, LSTMMixer
from bestiary.layers.xlstm import mLSTMMixer
from bestiary.models.meta.hybrid_builder import Config, HybridLM

SMALL = dict(vocab_size=32, d_model=16, n_heads=2, d_ff=24, d_state=4, ssm_head_dim=8, sliding_window=3)
KINDS = {
    "A": MultiHeadAttention,
    "W": MultiHeadAttention,
    "M": MambaMixer,
    "2": Mamba2Mixer,
    "R": RecurrentBlock,
    "L": LSTMMixer,
    "G": GRUMixer,
    "X": mLSTMMixer,
}


def test_layers_follow_the_pattern_and_the_pattern_repeats_to_n_layers():
    model = bestiary.build("hybrid_builder", **SMALL, pattern="MMA2", n_layers=6)
    assert model.letters == "MMA2MM"
    kinds = [type(block.mixer) for block in model.blocks]
    assert kinds == [MambaMixer, MambaMixer, MultiHeadAttention, Mamba2Mixer, MambaMixer, MambaMixer]
    every = bestiary.build("hybrid_builder", **SMALL, pattern="AWM2RLGX", n_layers=8)
    for letter, block in zip("AWM2RLGX", every.blocks, strict=True):
        assert type(block.mixer) is KINDS[letter]
    assert every.blocks[0].mixer.window is None and every.blocks[1].mixer.window == 3


def test_d_ff_none_builds_mixer_only_blocks():
    model = bestiary.build("hybrid_builder", **{**SMALL, "d_ff": None}, pattern="MA", n_layers=2)
    assert all(block.mlp is None for block in model.blocks)


def test_mixed_pattern_decodes_token_by_token_as_it_runs_whole():
    torch.manual_seed(0)
    model = bestiary.build("hybrid_builder", **SMALL, pattern="AWM2RLGX", n_layers=8).double().eval()
    tokens = torch.randint(0, 32, (2, 9))  # longer than the window of 3
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache), model(tokens[:, 4:6], cache=cache)]
        steps += [model(tokens[:, t : t + 1], cache=cache) for t in range(6, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full)


def test_sliding_window_layer_ignores_tokens_beyond_its_window():
    torch.manual_seed(0)
    model = bestiary.build("hybrid_builder", **{**SMALL, "d_ff": None}, pattern="W", n_layers=1).double()
    tokens = torch.randint(0, 32, (1, 8))
    changed = tokens.clone()
    changed[0, 0] = (tokens[0, 0] + 1) % 32
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, 3:], b[:, 3:])  # position 3 sees 1..3 only (window 3)
    assert not torch.allclose(a[:, :3], b[:, :3])


def test_unknown_letter_is_refused_with_the_table():
    for make in (
        lambda: bestiary.build("hybrid_builder", **SMALL, pattern="MQA"),
        lambda: HybridLM(Config(**SMALL, pattern="MQA")),  # built directly, without build()'s checks
    ):
        with pytest.raises(
            bestiary.ConfigError, match=r"pattern='MQA' has unknown letter\(s\) \['Q'\].*'M' = Mamba-1"
        ):
            make()
    with pytest.raises(bestiary.ConfigError, match="pattern=''"):
        bestiary.build("hybrid_builder", **SMALL, pattern="")
