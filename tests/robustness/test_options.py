"""Class 1 and 5 of the robustness issue: options are checked for type, range and consistency
before anything is built, and every refusal names the model, the option and what is allowed.

The registry sweep (tests/test_registry.py) checks every numeric and string option of every model;
these are the cases a hostile-but-realistic user tries, one by one."""

import math

import pytest
import torch

import bestiary
from bestiary import ConfigError
from bestiary.generation import generate
from bestiary.generation.sampling import SamplingParams, top_k_filter, top_p_filter


@pytest.mark.parametrize(
    "options, message",
    [
        ({"d_model": "64"}, r"decoder_only: option d_model='64' has the wrong type \(str\); expected int"),
        ({"n_layers": 2.5}, r"option n_layers=2.5 has the wrong type \(float\); expected int"),
        ({"n_layers": True}, r"option n_layers=True has the wrong type \(bool\)"),  # bool is not an int
        ({"n_heads": 0}, r"option n_heads=0 is not allowed; it must be >= 1"),  # was a ZeroDivisionError
        ({"d_model": 0}, r"option d_model=0 is not allowed"),
        ({"n_layers": -2}, r"option n_layers=-2 is not allowed"),  # used to build an empty model
        ({"n_kv_heads": 0}, r"option n_kv_heads=0 is not allowed"),  # used to mean "same as n_heads"
        ({"dropout": 1.0}, r"option dropout=1.0 is not allowed; it must be >= 0.0 and < 1.0"),
        ({"dropout": math.nan}, r"option dropout=nan is not allowed"),
        ({"norm_eps": 0.0}, r"option norm_eps=0.0 is not allowed; it must be > 0.0"),
        ({"rope_theta": -1.0}, r"option rope_theta=-1.0 is not allowed"),
        ({"position": "rotary"}, r"option position='rotary' is not allowed; it must be one of 'rope'"),
        ({"mlp": "swish"}, r"option mlp='swish' is not allowed; it must be one of"),
        ({"d_model": 30, "n_heads": 4}, r"d_model=30 must be divisible by n_heads=4 \(or give head_dim\)"),
        ({"n_heads": 4, "n_kv_heads": 3}, r"n_heads=4 must be a multiple of n_kv_heads=3"),
        ({"sliding_window": 0}, r"option sliding_window=0 is not allowed"),
    ],
)
def test_bad_options_are_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message):
        bestiary.build("decoder_only", tiny=True, **options)


def test_nothing_is_built_before_the_options_are_checked(monkeypatch):
    """The check runs before the model's constructor: a huge model with one bad option fails at once."""
    built = []
    card = bestiary.card("decoder_only")
    monkeypatch.setattr(card, "model_cls", lambda config: built.append(config))
    with pytest.raises(ConfigError):
        bestiary.build("decoder_only", d_model=4096, n_layers=96, vocab_size=200_000, dropout=2.0)
    assert built == []


def test_a_config_error_is_both_a_type_error_and_a_value_error():
    for base in (TypeError, ValueError):
        with pytest.raises(base):
            bestiary.build("mlp", d_model="wide")


def test_a_preset_or_tiny_passed_as_an_option_says_how_to_do_it():
    with pytest.raises(ConfigError, match=r"no option 'preset'.*bestiary.build\('gpt2'\)"):
        bestiary.build("decoder_only", preset="gpt2")
    with pytest.raises(bestiary.RegistryError, match=r"unknown model 'gtp2'. Did you mean: gpt2"):
        bestiary.build("gtp2")


def test_per_stage_options_take_lists_and_check_each_stage():
    config = bestiary.config("convnext", tiny=True, depths=[1, 1, 1, 1], dims=[8, 16, 32, 64])
    assert config.depths == (1, 1, 1, 1) and config.dims == (8, 16, 32, 64)
    with pytest.raises(ConfigError, match=r"option depths=\(1, 0, 1, 1\) is not allowed"):
        bestiary.build("convnext", tiny=True, depths=(1, 0, 1, 1))
    with pytest.raises(ConfigError, match=r"depths=.* and dims=.* must have one entry per stage"):
        bestiary.build("convnext", tiny=True, depths=(1, 1), dims=(8, 16, 32))
    with pytest.raises(ConfigError, match=r"option depths='2222' has the wrong type"):
        bestiary.build("convnext", tiny=True, depths="2222")


def test_options_stay_keyword_only():
    with pytest.raises(TypeError):
        bestiary.build("mlp", 4)
    with pytest.raises(TypeError):
        bestiary.card("mlp").config_cls(4)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"temperature": math.nan}, r"temperature=nan is not allowed"),
        ({"temperature": -0.5}, r"temperature=-0.5 is not allowed"),
        ({"temperature": "0.7"}, r"temperature='0.7' has the wrong type"),
        ({"top_p": "0.9"}, r"top_p='0.9' has the wrong type"),
        ({"top_p": 0.0}, r"top_p=0.0 is not allowed; it must be > 0.0 and <= 1.0"),
        ({"top_k": 2.0}, r"top_k=2.0 has the wrong type"),
        ({"min_p": 1.5}, r"min_p=1.5 is not allowed"),
        ({"repetition_penalty": 0}, r"repetition_penalty=0 is not allowed"),
    ],
)
def test_sampling_parameters_are_checked_with_the_same_mechanism(params, message):
    with pytest.raises(ConfigError, match=message):
        SamplingParams(**params)
    model = bestiary.build("decoder_only", tiny=True).eval()
    with pytest.raises(ConfigError, match=message):
        generate(model, [1, 2, 3], 4, **params)


def test_the_sampling_filters_check_their_argument():
    logits = torch.randn(2, 10)
    with pytest.raises(ConfigError, match=r"top_k='3' has the wrong type"):
        top_k_filter(logits, "3")
    with pytest.raises(ConfigError, match=r"top_p=nan is not allowed"):
        top_p_filter(logits, math.nan)
    with pytest.raises(TypeError, match="floating-point logits"):
        top_k_filter(torch.ones(2, 10, dtype=torch.long), 3)
