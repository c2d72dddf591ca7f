"""Bestiary: a field guide to neural network architectures, each written from scratch.

    import bestiary
    model = bestiary.build("mlp", in_dim=2, num_classes=3)
    bestiary.list_models("feedforward"); bestiary.card("tabnet"); bestiary.build("resnet18")

The public names below are imported lazily, so that `import bestiary.scratch` (NumPy only)
does not import torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "quick": "bestiary._runtime",
    "device": "bestiary._runtime",
    "seed_everything": "bestiary._runtime",
    "LanguageModel": "bestiary.language_model",
    "build_lm": "bestiary.language_model",
    "ConfigError": "bestiary.registry",
    "ModelCard": "bestiary.registry",
    "Preset": "bestiary.registry",
    "RegistryError": "bestiary.registry",
    "build": "bestiary.registry",
    "card": "bestiary.registry",
    "config": "bestiary.registry",
    "count_params": "bestiary.registry",
    "example_input": "bestiary.registry",
    "families": "bestiary.registry",
    "list_models": "bestiary.registry",
    "list_presets": "bestiary.registry",
    "register": "bestiary.registry",
}

__all__ = [
    "ConfigError",
    "LanguageModel",
    "ModelCard",
    "Preset",
    "RegistryError",
    "build",
    "build_lm",
    "card",
    "config",
    "count_params",
    "device",
    "example_input",
    "families",
    "list_models",
    "list_presets",
    "quick",
    "register",
    "seed_everything",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value  # cache: the next lookup is a plain attribute
        return value
    raise AttributeError(f"module 'bestiary' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from bestiary._runtime import device, quick, seed_everything
    from bestiary.language_model import LanguageModel, build_lm
    from bestiary.registry import (
        ConfigError,
        ModelCard,
        Preset,
        RegistryError,
        build,
        card,
        config,
        count_params,
        example_input,
        families,
        list_models,
        list_presets,
        register,
    )
