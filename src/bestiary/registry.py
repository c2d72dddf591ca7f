"""The model registry: every architecture registers itself with `@register`.

A model file declares a `Config` dataclass and an `nn.Module` that takes it, and decorates the
module class:

    @register(
        "mlp", family="feedforward", config=Config,
        summary="Stacked Linear + activation layers.",
        paper="Learning representations by back-propagating errors", year=1986, arxiv=None,
        tiny=dict(d_model=8, n_layers=1),
        presets={},
    )
    class MLP(nn.Module):
        def __init__(self, config: Config): ...

The registry builds an example input from the card's `input_kind` (`default_example_input`); a
model defines a static `example_input(config, batch)` only where its input is special (NeRF's
points and directions, a camera pose).

The registry is filled by importing every module under `bestiary.models` (lazily, on first use):
there is no second, hand-kept list of names.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import pkgutil
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from bestiary.options import ConfigError, Rule, field_types, validate

#: the input conventions of DESIGN.md, used by the registry sweep and by `build_lm`
INPUT_KINDS = ("vector", "sequence", "tokens", "image", "graph", "points", "audio", "custom")


class RegistryError(KeyError):
    """An unknown model or preset name. Subclasses KeyError so `except KeyError` still works."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0])


@dataclass(frozen=True)
class Preset:
    """A canonical published size: Config overrides plus the published parameter count.

    `params` is the number the paper or the reference implementation reports; a test checks
    that `build(preset)` has exactly that many parameters. Leave it None only where no
    published number exists (and say why in `source`).
    """

    overrides: dict[str, Any]
    params: int | None = None
    source: str = ""  # where the parameter count comes from (paper table, reference code)


@dataclass
class ModelCard:
    """Everything the library knows about one architecture."""

    name: str
    family: str
    summary: str
    paper: str
    year: int | None
    arxiv: str | None
    config_cls: type
    model_cls: type[nn.Module]
    input_kind: str
    tiny: dict[str, Any] = field(default_factory=dict)
    presets: dict[str, Preset] = field(default_factory=dict)
    causal: bool = False  # sequence models: may position t see only positions <= t?
    outputs: str = "a tensor"  # what forward returns, in words (for dict/dataclass outputs)
    # False for a reference architecture outside the 267-name catalog (BERT's encoder, T5), which
    # the catalog's families build on and compare against
    in_catalog: bool = True
    rules: tuple[Rule, ...] = ()  # rules between options beyond the vocabulary's (bestiary.options)

    @property
    def options(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self.config_cls)]

    def make_config(self, tiny: bool = False, preset: str | None = None, /, **overrides: Any) -> Any:
        """Config for this model: defaults, then the tiny overrides or a preset, then `overrides`.

        Every option is checked (type, range, the rules between options) before anything is built:
        a bad one raises ConfigError naming the model, the option, the value and what is allowed."""
        unknown = sorted(set(overrides) - set(self.options))
        if unknown:
            hint = ""
            if "preset" in unknown or "tiny" in unknown:
                hint = (
                    " A preset is built by its own name (bestiary.build('gpt2')); tiny=True is build's flag."
                )
            raise ConfigError(
                f"{self.name!r} has no option {', '.join(map(repr, unknown))}. "
                f"Valid options: {', '.join(self.options)}.{hint}"
            )
        values: dict[str, Any] = {}
        if tiny:
            values.update(self.tiny)
        if preset is not None:
            values.update(self.presets[preset].overrides)
        values.update(overrides)
        hints = field_types(self.config_cls)
        for name, value in values.items():  # per-stage options given as lists: the Config holds tuples
            if isinstance(value, list) and typing.get_origin(hints.get(name)) is tuple:
                values[name] = tuple(value)
        config = self.config_cls(**values)
        validate(config, model=self.name, rules=self.rules)
        return config

    def example_input(self, config: Any, batch: int = 2) -> Any:
        """The model's own `example_input` if it defines one, else the default for its input kind."""
        own = getattr(self.model_cls, "example_input", None)
        if callable(own):
            return own(config, batch)
        return default_example_input(self.input_kind, config, batch)

    def __str__(self) -> str:
        lines = [
            f"{self.name} ({self.family}) — {self.summary}",
            f"  paper:   {self.paper} ({self.year})" + (f", arXiv:{self.arxiv}" if self.arxiv else ""),
            f"  input:   {self.input_kind}" + (" (causal)" if self.causal else ""),
            f"  returns: {self.outputs}",
            f"  options: {', '.join(self.options)}",
        ]
        if self.presets:
            lines.append(f"  presets: {', '.join(self.presets)}")
        return "\n".join(lines)


#: sequence length of default example inputs: long enough to exercise masks and caches, short
#: enough that the registry sweep stays fast
EXAMPLE_SEQ_LEN = 16
DEFAULT_INPUT_KINDS = ("vector", "sequence", "tokens", "image")


def default_example_input(input_kind: str, config: Any, batch: int = 2) -> torch.Tensor:
    """A random input of the right shape for `input_kind`, read from the config's standard options:
    vector (B, in_dim); sequence (B, T, in_dim); tokens (B, T) ids below vocab_size; image
    (B, in_channels, image_size, image_size). T = min(EXAMPLE_SEQ_LEN, max_seq_len)."""
    seq_len = min(EXAMPLE_SEQ_LEN, getattr(config, "max_seq_len", None) or EXAMPLE_SEQ_LEN)
    if input_kind == "vector":
        return torch.randn(batch, config.in_dim)
    if input_kind == "sequence":
        return torch.randn(batch, seq_len, config.in_dim)
    if input_kind == "tokens":
        return torch.randint(0, config.vocab_size, (batch, seq_len))
    if input_kind == "image":
        return torch.randn(batch, config.in_channels, config.image_size, config.image_size)
    raise ValueError(f"no default example input for {input_kind!r} input; the model defines example_input")


_MODELS: dict[str, ModelCard] = {}
_PRESETS: dict[str, str] = {}  # preset name -> model name
_loaded = False


def register(
    name: str,
    *,
    family: str,
    config: type,
    summary: str,
    paper: str,
    year: int | None,
    arxiv: str | None,
    input_kind: str,
    tiny: dict[str, Any] | None = None,
    presets: dict[str, Preset] | None = None,
    causal: bool = False,
    outputs: str = "a tensor",
    in_catalog: bool = True,
    rules: tuple[Rule, ...] | list[Rule] = (),
) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that adds an architecture to the registry (see the module docstring)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"config for {name!r} must be a dataclass, got {config!r}")
    if input_kind not in INPUT_KINDS:
        raise ValueError(f"input_kind must be one of {INPUT_KINDS}, got {input_kind!r}")

    def decorate(model_cls: type[nn.Module]) -> type[nn.Module]:
        if input_kind not in DEFAULT_INPUT_KINDS and not callable(getattr(model_cls, "example_input", None)):
            raise TypeError(
                f"{model_cls.__name__} takes {input_kind!r} input, which has no default example: "
                "give it a static method example_input(config, batch)"
            )
        if name in _MODELS and _MODELS[name].model_cls.__qualname__ != model_cls.__qualname__:
            raise ValueError(f"model name {name!r} is registered twice")
        card = ModelCard(
            name=name,
            family=family,
            summary=summary,
            paper=paper,
            year=year,
            arxiv=arxiv,
            config_cls=config,
            model_cls=model_cls,
            input_kind=input_kind,
            tiny=dict(tiny or {}),
            presets=dict(presets or {}),
            causal=causal,
            outputs=outputs,
            in_catalog=in_catalog,
            rules=tuple(rules),
        )
        card.make_config(True)  # fail at import time if the tiny overrides are wrong
        _MODELS[name] = card
        for preset_name in card.presets:
            if _PRESETS.get(preset_name, name) != name or preset_name in _MODELS:
                raise ValueError(f"preset name {preset_name!r} is already taken")
            _PRESETS[preset_name] = name
        model_cls.card = card  # type: ignore[attr-defined]
        return model_cls

    return decorate


def _load_all() -> None:
    """Import every module under bestiary.models so that their @register calls run."""
    global _loaded
    if _loaded:
        return
    import bestiary.models as models_pkg

    for info in pkgutil.walk_packages(models_pkg.__path__, prefix="bestiary.models."):
        importlib.import_module(info.name)
    _loaded = True


def _close_matches(name: str) -> str:
    candidates = list(_MODELS) + list(_PRESETS)
    matches = difflib.get_close_matches(name, candidates, n=5, cutoff=0.5)
    if not matches:  # also try substring matches: "resnet" -> "resnet18", ...
        matches = [c for c in candidates if name in c or c in name][:5]
    return f" Did you mean: {', '.join(matches)}?" if matches else ""


def resolve(name: str) -> tuple[ModelCard, str | None]:
    """A model or preset name -> (card, preset name or None)."""
    _load_all()
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    key = name.lower().replace("-", "_")
    if key in _MODELS:
        return _MODELS[key], None
    if key in _PRESETS:
        return _MODELS[_PRESETS[key]], key
    raise RegistryError(f"unknown model {name!r}.{_close_matches(key)} (bestiary.list_models() lists all)")


def card(name: str) -> ModelCard:
    """The ModelCard of a model (or of the model behind a preset name)."""
    return resolve(name)[0]


def list_models(family: str | None = None) -> list[str]:
    """Registered model names, sorted; only one family's if `family` is given."""
    _load_all()
    if family is not None and family not in families():
        raise RegistryError(f"unknown family {family!r}. Families: {', '.join(families())}")
    return sorted(n for n, c in _MODELS.items() if family is None or c.family == family)


def list_presets(name: str | None = None) -> list[str]:
    """Preset names (of one model, if given)."""
    _load_all()
    return sorted(p for p, m in _PRESETS.items() if name is None or m == resolve(name)[0].name)


def families() -> list[str]:
    """The families that have at least one registered model."""
    _load_all()
    return sorted({c.family for c in _MODELS.values()})


def config(name: str, *, tiny: bool = False, **overrides: Any) -> Any:
    """The Config a `build` with the same arguments would use."""
    model_card, preset = resolve(name)
    return model_card.make_config(tiny, preset, **overrides)


def build(name: str, *, tiny: bool = False, **overrides: Any) -> nn.Module:
    """Build a registered architecture (or a published preset) by name.

    `build("mlp", in_dim=2, num_classes=3)`; `build("resnet18")`; `build("mamba", tiny=True)`.
    """
    model_card, preset = resolve(name)
    model_config = model_card.make_config(tiny, preset, **overrides)
    return model_card.model_cls(model_config)


def example_input(name: str, batch: int = 2, *, tiny: bool = False, **overrides: Any) -> Any:
    """An input of the right shape for `build(name, tiny=tiny, **overrides)`."""
    model_card, preset = resolve(name)
    return model_card.example_input(model_card.make_config(tiny, preset, **overrides), batch)


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def tensors_in(output: Any) -> list[torch.Tensor]:
    """All tensors in a model output (tensor, tuple/list, dict or dataclass), in a stable order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        output = {f.name: getattr(output, f.name) for f in dataclasses.fields(output)}
    if isinstance(output, dict):
        return [t for key in output for t in tensors_in(output[key])]
    if isinstance(output, (list, tuple)):
        return [t for item in output for t in tensors_in(item)]
    return []
