"""The registry sweep: every registered model, at its tiny config, must pass these checks.

A model is tested the moment it is registered; there is no list to update.
"""

import csv
import io
import pathlib
import time

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError
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
    start = time.perf_counter()
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
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0, f"{name}'s tiny config took {elapsed:.1f} s for forward+backward; keep it tiny"


@pytest.mark.parametrize("name", MODELS)
def test_deterministic_under_seed(name):
    outputs = []
    for _ in range(2):
        model = _build(name, seed=0).eval()
        with torch.no_grad():
            outputs.append(_float_outputs(_forward(model, _input(name))))
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", MODELS)
def test_batch_size_one(name):
    model = _build(name).eval()
    with torch.no_grad():
        outputs = _float_outputs(_forward(model, _input(name, batch=1)))
    assert outputs and all(torch.isfinite(t).all() for t in outputs)


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
        assert name in catalog, f"{name} is not in catalog.tsv"
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
