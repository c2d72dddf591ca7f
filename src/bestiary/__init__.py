"""Bestiary: a field guide to neural network architectures, each written from scratch.

    import bestiary
    model = bestiary.build("mlp", in_dim=2, num_classes=3)
    bestiary.list_models("feedforward"); bestiary.card("tabnet"); bestiary.build("resnet18")
"""

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

__version__ = "0.1.0"

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
