"""The registry sweep: every registered model, at its tiny config, must pass these checks.

A model is tested the moment it is registered; there is no list to update. Beyond build, forward,
backward and determinism, the sweep holds every model to the shared contracts of DESIGN.md: the
features API (`forward_features`, `num_features`, `forward_head`), one option vocabulary, and, for
every causal model that can decode incrementally, cached decoding equal to the full forward.
"""

import csv
import dataclasses
import io
import pathlib

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError
from bestiary.options import declared_range, field_types, matches_type
from bestiary.registry import tensors_in

MODELS = bestiary.list_models()
CATALOG = pathlib.Path(bestiary.__file__).with_name("catalog.tsv")


def _catalog_names() -> set[str]:
    rows = csv.reader(io.StringIO(CATALOG.read_text()), delimiter="\t")
    return {row[1] for row in rows if row and not row[0].startswith("#")}


def _build(name, seed=0):
    torch.manual_seed(seed)
    return bestiary.build(name, tiny=True)


def _input(name, batch=2, seed=1):
    torch.manual_seed(seed)
    return bestiary.example_input(name, batch, tiny=True)


def _forward(model, inputs):
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def _float_outputs(output):
    return [t for t in tensors_in(output) if t.is_floating_point()]


@pytest.mark.parametrize("name", MODELS)
def test_forward_backward_finite(name):
    model = _build(name)
    model.train()
    outputs = _float_outputs(_forward(model, _input(name)))
    assert outputs, f"{name} returned no floating-point tensor"
    for t in outputs:
        assert torch.isfinite(t).all(), f"{name} produced non-finite outputs"
    # a loss that depends on every output element (a plain sum would give zero gradients to softmax outputs)
    loss = sum(t.pow(2).mean() for t in outputs if t.requires_grad)
    assert isinstance(loss, torch.Tensor), f"{name}: no output depends on the parameters"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, f"{name}: backward reached no parameter"
    assert all(torch.isfinite(g).all() for g in grads), f"{name} produced non-finite gradients"
    assert any(g.abs().sum() > 0 for g in grads), f"{name}: every gradient is zero"


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_under_seed(name):
    outputs = []
    for _ in range(2):
        model = _build(name, seed=0).eval()
        with torch.no_grad():
            outputs.append(_float_outputs(_forward(model, _input(name))))
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def _row(inputs, i: int):
    """Example i of a batched input (a tensor, tuple or dict of tensors with the batch first)."""
    if isinstance(inputs, dict):
        return {k: _row(v, i) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(_row(v, i) for v in inputs)
    return inputs[i : i + 1]


@pytest.mark.parametrize("name", MODELS)
def test_batch_size_one_equals_row_zero_of_a_batch(name):
    """Examples in a batch don't interact (in eval mode): batch norm statistics, masks and
    reshapes that mix the batch dimension up would show here."""
    model = _build(name).eval()
    inputs = _input(name, batch=2)
    with torch.no_grad():
        batch_out = _float_outputs(_forward(model, inputs))
        single_out = _float_outputs(_forward(model, _row(inputs, 0)))
    assert single_out and len(single_out) == len(batch_out)
    for single, batched in zip(single_out, batch_out):
        if batched.dim() == 0 or batched.shape[0] != 2:
            continue  # a scalar (a loss averaged over the batch) or a batch-free output
        torch.testing.assert_close(single, batched[:1], atol=1e-5, rtol=1e-4)


# ---------------------------------------------------------------------------- the features API
@pytest.mark.parametrize("name", MODELS)
def test_features_api(name):
    """Every model exposes `forward_features` and `num_features`; a classifier also `forward_head`,
    and its forward is exactly head(features)."""
    model = _build(name).eval()
    inputs = _input(name)
    assert isinstance(model.num_features, int) and model.num_features > 0, f"{name}: num_features"
    with torch.no_grad():
        features = _forward(model.forward_features, inputs)
        assert isinstance(features, torch.Tensor), f"{name}: forward_features returns a tensor"
        assert features.shape[0] == 2, f"{name}: features keep the batch dimension first"
        # the feature width is on the last axis (tokens, vectors) or the channel axis (feature maps)
        width = features.shape[1] if features.dim() == 4 else features.shape[-1]
        assert width == model.num_features, (
            f"{name}: features of width {width}, num_features {model.num_features}"
        )
        if callable(getattr(model, "forward_head", None)):
            full = _float_outputs(_forward(model, inputs))[0]
            torch.testing.assert_close(model.forward_head(features), full, atol=0, rtol=0)


# ------------------------------------------------------------------------ incremental decoding
def _language_models():
    """(name, builder) for every causal model that generates: token models as they are, sequence
    backbones through build_lm."""
    out = []
    for name in MODELS:
        card = bestiary.card(name)
        if card.causal and card.input_kind in ("tokens", "sequence"):
            out.append(name)
    return out


LANGUAGE_MODELS = _language_models()
# Causal models that do not decode incrementally, and why. A new causal model must either give its
# mixers a cache (`init_cache`) or be listed here with its reason.
NO_INCREMENTAL_DECODING = {
    "byte_latent_transformer": "patch boundaries depend on the bytes to come: generation re-runs the sequence",
    "free_transformer": "returns logits with the latent bits' KL, not a plain next-token model",
    "multi_token_prediction": "returns n_future heads of logits; generation uses head 0 without a cache",
}


def _build_lm(name, seed=0):
    torch.manual_seed(seed)
    return bestiary.build_lm(name, vocab_size=32, tiny=True).eval()


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_cached_decoding_equals_the_full_forward(name):
    from bestiary.generation import generate, supports_cache

    model = _build_lm(name)
    if name in NO_INCREMENTAL_DECODING:
        assert not supports_cache(model), f"{name} decodes incrementally now: remove it from the list"
        pytest.skip(NO_INCREMENTAL_DECODING[name])
    assert supports_cache(model), f"{name} is causal but has no init_cache (see NO_INCREMENTAL_DECODING)"
    vocab = model.config.vocab_size if hasattr(model, "config") else model.vocab_size
    tokens = torch.randint(0, vocab, (2, 10))
    with torch.no_grad():
        full = model(tokens)
        cache = model.init_cache(2)
        steps = [model(tokens[:, :4], cache=cache)] + [
            model(tokens[:, t : t + 1], cache=cache) for t in range(4, 10)
        ]
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-4)
        prompt = tokens[:, :3]
        cached = generate(model, prompt, 8, temperature=0, use_cache=True)
        uncached = generate(model, prompt, 8, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached), f"{name}: cached and uncached greedy decoding disagree"


@pytest.mark.parametrize("name", LANGUAGE_MODELS)
def test_a_cache_from_another_model_or_for_another_batch_is_refused(name):
    """Another model's keys or states would give plausible-looking garbage: refuse them by name."""
    if name in NO_INCREMENTAL_DECODING:
        pytest.skip(NO_INCREMENTAL_DECODING[name])
    model, other = _build_lm(name), _build_lm(name)
    vocab = model.config.vocab_size if hasattr(model, "config") else model.vocab_size
    tokens = torch.randint(0, vocab, (2, 3))
    with torch.no_grad():
        with pytest.raises(ValueError, match="another"):
            model(tokens, cache=other.init_cache(2))
        with pytest.raises(ValueError, match="batch"):
            model(tokens, cache=model.init_cache(3))


# --------------------------------------------------------------------------- one vocabulary
# Names that mean an option the vocabulary already has (DESIGN.md, "Registry contract")
SYNONYMS = {
    "eps": "norm_eps",
    "layer_norm_eps": "norm_eps",
    "rms_norm_eps": "norm_eps",
    "rope_base": "rope_theta",
    "ffn": "mlp",
    "ffn_dim": "d_ff",
    "hidden_dim": "d_model",
    "hidden_size": "d_model",
    "n_embd": "d_model",
    "embed_dim": "d_model",
    "dim": "d_model",
    "width": "d_model",
    "intermediate_size": "d_ff",
    "num_layers": "n_layers",
    "n_layer": "n_layers",
    "depth": "n_layers",
    "num_heads": "n_heads",
    "n_head": "n_heads",
    "num_attention_heads": "n_heads",
    "num_kv_heads": "n_kv_heads",
    "num_key_value_heads": "n_kv_heads",
    "n_classes": "num_classes",
    "img_size": "image_size",
    "in_chans": "in_channels",
    "input_dim": "in_dim",
    "vocab": "vocab_size",
    "context_length": "max_seq_len",
    "block_size": "max_seq_len",
    "drop_rate": "dropout",
    "layers": "depths (per stage) or n_layers",
    "widths": "dims",
    "num_experts": "n_experts",
    "state_dim": "d_state",
    "lora_rank": "rank",
}


@pytest.mark.parametrize("name", MODELS)
def test_options_use_the_one_vocabulary(name):
    card = bestiary.card(name)
    fields = {f.name: f for f in dataclasses.fields(card.config_cls)}
    for option in fields:
        assert option not in SYNONYMS, (
            f"{name}: option {option!r} is spelled {SYNONYMS[option]!r} everywhere else"
        )
    for kind_option in ("norm", "mlp"):  # kind names, never a bool
        if kind_option in fields:
            assert isinstance(getattr(card.make_config(), kind_option), str), (
                f"{name}: {kind_option} is a kind name"
            )
    if "mlp_ratio" in fields:  # a ratio only where there is no single width to give d_ff for
        assert "depths" in fields and "d_ff" not in fields, (
            f"{name}: use d_ff (mlp_ratio is for per-stage widths)"
        )


@pytest.mark.parametrize("name", MODELS)
def test_options_are_keyword_only(name):
    config_cls = bestiary.card(name).config_cls
    first = dataclasses.fields(config_cls)[0]
    with pytest.raises(TypeError):
        config_cls(getattr(config_cls(), first.name))  # a positional option


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name):
    source = _build(name, seed=0).eval()
    target = _build(name, seed=123).eval()
    target.load_state_dict(source.state_dict())
    inputs = _input(name)
    with torch.no_grad():
        for a, b in zip(_float_outputs(_forward(source, inputs)), _float_outputs(_forward(target, inputs))):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def _corrupt(x: torch.Tensor, kind: str) -> torch.Tensor:
    """The same input with its feature (or channel) dimension one too large."""
    if kind == "image":  # (B, C, H, W): one channel too many
        return torch.cat([x, x[:, :1]], dim=1)
    return torch.cat([x, x[..., :1]], dim=-1)  # (..., F+1)


@pytest.mark.parametrize(
    "name", [n for n in MODELS if bestiary.card(n).input_kind in ("vector", "sequence", "image")]
)
def test_wrong_input_shape_names_expected_shape(name):
    model = _build(name).eval()
    x = _input(name)
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        pytest.skip("example input is not a single float tensor")
    with pytest.raises(ShapeError, match=r"expected .* shape"):
        model(_corrupt(x, bestiary.card(name).input_kind))


@pytest.mark.parametrize("name", MODELS)
def test_card_is_complete(name):
    card = bestiary.card(name)
    assert card.summary and card.paper and card.family
    assert card.model_cls.__module__.startswith(f"bestiary.models.{card.family}."), (
        "family folders follow catalog.tsv"
    )
    module = __import__(card.model_cls.__module__, fromlist=["_"])
    assert module.__doc__ and len(module.__doc__) > 40, f"{name}: the module docstring names the paper"


def test_every_name_is_in_the_catalog_or_a_preset():
    catalog = _catalog_names()
    for name in MODELS:
        in_catalog = bestiary.card(name).in_catalog
        assert (name in catalog) == in_catalog, (
            f"{name}: in catalog.tsv is {name in catalog}, card says {in_catalog}"
        )
    for preset in bestiary.list_presets():
        assert preset not in MODELS


def test_packaged_catalog_matches_shared_copy():
    shared = pathlib.Path(__file__).resolve().parents[2] / "shared" / "catalog.tsv"
    if not shared.exists():
        pytest.skip("../shared is not beside this checkout")
    assert _catalog_names() == {
        row[1]
        for row in csv.reader(io.StringIO(shared.read_text()), delimiter="\t")
        if row and row[0][0] != "#"
    }


@pytest.mark.parametrize("preset", bestiary.list_presets())
def test_preset_parameter_count_matches_publication(preset):
    card = bestiary.card(preset)
    published = card.presets[preset].params
    if published is None:
        pytest.skip(f"{preset}: no published parameter count ({card.presets[preset].source})")
    with torch.device("meta"):  # no memory, no init time: only shapes are needed to count
        model = bestiary.build(preset)
    assert bestiary.count_params(model) == published, f"{preset}: source {card.presets[preset].source}"


# ------------------------------------------------------------------------- validated options
def _numeric_options(name):
    """(field, annotation) for every int or float option (not bool, not str)."""
    card = bestiary.card(name)
    hints = field_types(card.config_cls)
    for field in dataclasses.fields(card.config_cls):
        tp = hints[field.name]
        is_number = matches_type(1, tp) or matches_type(0.5, tp) or matches_type((1,), tp)
        if is_number and not matches_type("x", tp) and not matches_type(True, tp):
            yield field, tp


@pytest.mark.parametrize("name", MODELS)
def test_options_of_the_wrong_type_or_range_are_refused_by_name(name):
    """Every numeric option refuses a string, and every integer option declares a range (from the
    vocabulary or its own `option(...)`) that refuses a value outside it — before anything is built."""
    tiny = bestiary.config(name, tiny=True)
    for field, tp in _numeric_options(name):
        with pytest.raises(
            bestiary.ConfigError, match=rf"{name}: option {field.name}='3' has the wrong type"
        ):
            bestiary.build(name, tiny=True, **{field.name: "3"})
        is_integer = (matches_type(1, tp) or matches_type((1,), tp)) and not matches_type(0.5, tp)
        if not is_integer and not matches_type((1,), tp) or matches_type((0.5,), tp):
            continue  # float options: a range where one is declared (checked by the unit tests)
        allowed = declared_range(field)
        assert allowed is not None and allowed.outside() is not None, (
            f"{name}: integer option {field.name!r} has no declared range; use option(default, min=...)"
        )
        current = getattr(tiny, field.name)
        bad = tuple(allowed.outside() for _ in current) if isinstance(current, tuple) else allowed.outside()
        with pytest.raises(bestiary.ConfigError, match=rf"{name}: option {field.name}=.* is not allowed"):
            bestiary.build(name, tiny=True, **{field.name: bad})


@pytest.mark.parametrize("name", MODELS)
def test_kind_options_refuse_an_unknown_kind(name):
    """A string option either declares its choices (or gets them from the vocabulary) and refuses
    anything else by name, before anything is built."""
    card = bestiary.card(name)
    hints = field_types(card.config_cls)
    tiny = bestiary.config(name, tiny=True)
    for field in dataclasses.fields(card.config_cls):
        if not (matches_type("x", hints[field.name]) or matches_type(("x",), hints[field.name])):
            continue
        allowed = declared_range(field)
        assert allowed is not None and allowed.choices, f"{name}: declare the choices of {field.name!r}"
        current = getattr(tiny, field.name)
        bad = tuple("nonsense" for _ in current) if isinstance(current, tuple) else "nonsense"
        with pytest.raises(bestiary.ConfigError, match=rf"{name}: option {field.name}=.* must be one of"):
            bestiary.build(name, tiny=True, **{field.name: bad})


@pytest.mark.parametrize("name", [n for n in MODELS if bestiary.card(n).input_kind == "tokens"])
def test_token_ids_are_checked_at_the_model_boundary(name):
    model = _build(name).eval()
    tokens = _input(name)
    vocab = bestiary.config(name, tiny=True).vocab_size
    too_big = tokens.clone()
    too_big[1, 3] = vocab
    with pytest.raises(ValueError, match=rf"\[1, 3\] = {vocab} is not a token id .* {vocab} ids"):
        model(too_big)
    negative = tokens.clone()
    negative[0, 0] = -1
    with pytest.raises(ValueError, match=r"\[0, 0\] = -1 is not a token id"):
        model(negative)
    with pytest.raises(TypeError, match="integer token ids"):
        model(tokens.float())


@pytest.mark.parametrize("name", [n for n in MODELS if bestiary.card(n).input_kind == "image"])
def test_integer_images_are_refused_with_the_conversion_to_use(name):
    model = _build(name).eval()
    pixels = (_input(name).clamp(0, 1) * 255).to(torch.uint8)
    with pytest.raises(TypeError, match=r"floating-point pixels, got torch.uint8.*float\(\) / 255"):
        model(pixels)
