"""Declared, validated model options: a bad option is refused, by name, before any tensor exists.

Every model's `Config` is a dataclass, so each option already declares its type (the annotation)
and its default. This module adds what a type cannot say, and checks all of it in `build`:

- **Ranges that come with the vocabulary.** The shared option names (`d_model`, `n_heads`,
  `dropout`, `norm_eps`, ... see CONTRIBUTING.md) mean the same thing in every model, so their
  ranges are declared once, here (`VOCABULARY`): a new model that uses them is checked for free.
- **Ranges of a model's own options**, declared next to the default with `option(...)`:

      n_latent_bits: int = option(8, min=1, max=16)   # H: Z_t takes one of 2^H values
      position: str = option("rope", choices=("rope", "learned", "none"))

- **Rules between options.** The vocabulary's (`d_model % n_heads == 0` unless `head_dim` is
  given, `n_heads % n_kv_heads == 0`, `top_k <= n_experts`, as many `depths` as `dims`) apply to
  every model that has those options; a model adds its own with `register(..., rules=[...])`, each
  a `Rule(check, message)`.

`validate(config, model=name)` raises `ConfigError` naming the model, the option, the value and
what is allowed. `bestiary.build` calls it on every config, before the model is constructed.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bestiary.layers.mlp import ACTIVATIONS

ACTIVATION_KINDS = tuple(ACTIVATIONS)

__all__ = ["ConfigError", "Range", "Rule", "option", "validate", "VOCABULARY"]


class ConfigError(TypeError, ValueError):
    """An option the model's Config does not have, or a value it cannot take.

    Both a TypeError and a ValueError, so code that catches either for bad arguments still works."""


@dataclass(frozen=True)
class Range:
    """What values an option may take: bounds (inclusive `min`/`max`, exclusive `gt`/`lt`) or a
    set of choices. For a tuple option, the bounds apply to each element."""

    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None

    def allows(self, value: Any) -> bool:
        if isinstance(value, (tuple, list)):  # a per-stage option: each element
            return all(self.allows(v) for v in value)
        if self.choices is not None:
            return value in self.choices
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return True  # not a number (None, a string): the type check speaks for it
        if isinstance(value, float) and math.isnan(value):
            return False
        return (
            (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
            and (self.gt is None or value > self.gt)
            and (self.lt is None or value < self.lt)
        )

    def describe(self) -> str:
        if self.choices is not None:
            return "one of " + ", ".join(map(repr, self.choices))
        parts = [
            f">= {self.min}" if self.min is not None else "",
            f"> {self.gt}" if self.gt is not None else "",
        ]
        parts += [
            f"<= {self.max}" if self.max is not None else "",
            f"< {self.lt}" if self.lt is not None else "",
        ]
        return " and ".join(p for p in parts if p)

    def outside(self) -> Any:
        """A number this range refuses (for tests): just below or above a bound, or past the choices."""
        if self.choices is not None and all(isinstance(c, int) for c in self.choices):
            return max(self.choices) + 1
        if self.min is not None:
            return self.min - 1
        if self.gt is not None:
            return self.gt
        if self.max is not None:
            return self.max + 1
        if self.lt is not None:
            return self.lt
        return None


@dataclass(frozen=True)
class Rule:
    """A rule between options: `check(config) -> bool`, and the message when it is False."""

    check: Callable[[Any], bool]
    message: str
    options: tuple[str, ...] = ()  # the options the rule reads; it runs only if the Config has them all


def option(
    default: Any,
    *,
    min: float | None = None,  # noqa: A002 -- the natural names of the bounds
    max: float | None = None,  # noqa: A002
    gt: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A Config field with a declared range: `n_hash_buckets: int = option(64, min=0)`."""
    declared = Range(min, max, gt, lt, None if choices is None else tuple(choices))
    return dataclasses.field(default=default, metadata={"range": declared})


POSITIVE = Range(min=1)
#: options that count something or size something: each is an int >= 1 (for tuples, each element)
POSITIVE_OPTIONS = [
    "in_dim",
    "d_model",
    "n_layers",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "d_ff",
    "d_state",
    "vocab_size",
    "max_seq_len",
    "num_classes",
    "in_channels",
    "image_size",
    "patch_size",
    "kernel_size",
    "n_experts",
    "top_k",
    "rank",
    "depths",
    "dims",
]
#: the ranges that come with the shared option names (CONTRIBUTING.md, "One vocabulary")
VOCABULARY: dict[str, Range] = {
    **dict.fromkeys(POSITIVE_OPTIONS, POSITIVE),
    "dropout": Range(min=0.0, lt=1.0),
    "drop_path": Range(min=0.0, lt=1.0),
    "norm_eps": Range(gt=0.0),
    "rope_theta": Range(gt=0.0),
    "mlp_ratio": Range(gt=0.0),
    "attn_impl": Range(choices=("sdpa", "manual")),
    "activation": Range(choices=ACTIVATION_KINDS),  # a single activation function
    "mlp": Range(
        choices=(*ACTIVATION_KINDS, "swiglu", "geglu")
    ),  # the FFN: activation between two Linears, or gated
}


def _has(config: Any, *names: str) -> bool:
    return all(hasattr(config, n) and getattr(config, n) is not None for n in names)


#: the rules that come with the vocabulary: they run for every Config that has the options
VOCABULARY_RULES = (
    Rule(
        lambda c: getattr(c, "head_dim", None) is not None or c.d_model % c.n_heads == 0,
        "d_model={d_model} must be divisible by n_heads={n_heads} (or give head_dim)",
        ("d_model", "n_heads"),
    ),
    Rule(
        lambda c: c.n_heads % c.n_kv_heads == 0,
        "n_heads={n_heads} must be a multiple of n_kv_heads={n_kv_heads}",
        ("n_heads", "n_kv_heads"),
    ),
    Rule(
        lambda c: c.top_k <= c.n_experts,
        "top_k={top_k} must be <= n_experts={n_experts}",
        ("top_k", "n_experts"),
    ),
    Rule(
        lambda c: len(c.depths) == len(c.dims),
        "depths={depths} and dims={dims} must have one entry per stage each",
        ("depths", "dims"),
    ),
)


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        inner = (
            f"{_type_name(args[0])}, ..."
            if len(args) == 2 and args[1] is Ellipsis
            else ", ".join(map(_type_name, args))
        )
        return f"tuple[{inner}]"
    return getattr(tp, "__name__", str(tp))


def matches_type(value: Any, tp: Any) -> bool:
    """Does `value` fit the annotation `tp`? (bool is not an int here: `n_layers=True` is a mistake)."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches_type(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # an int is a fine float
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is tuple:
        args = typing.get_args(tp)
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches_type(v, args[0]) for v in value)
        return len(value) == len(args) and all(matches_type(v, a) for v, a in zip(value, args))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # an annotation we don't check (a Callable, a forward reference)


def declared_range(field: dataclasses.Field) -> Range | None:
    """The field's own range, or the vocabulary's for its name."""
    return field.metadata.get("range") or VOCABULARY.get(field.name)


@functools.cache
def field_types(config_cls: type) -> dict[str, Any]:
    """The Config's annotations, resolved (once per class: `build` asks on every call)."""
    return typing.get_type_hints(config_cls)


def validate(config: Any, *, model: str, rules: Sequence[Rule] = ()) -> None:
    """Check every option of `config` (type, range) and every rule; raise ConfigError on the first
    problem, naming the model, the option, its value and what is allowed."""
    hints = field_types(type(config))
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        tp = hints.get(field.name, Any)
        if not matches_type(value, tp):
            raise ConfigError(
                f"{model}: option {field.name}={value!r} has the wrong type "
                f"({type(value).__name__}); expected {_type_name(tp)}"
            )
        allowed = declared_range(field)
        if allowed is not None and not allowed.allows(value):
            raise ConfigError(
                f"{model}: option {field.name}={value!r} is not allowed; it must be {allowed.describe()}"
            )
    for rule in (*VOCABULARY_RULES, *rules):
        if rule.options and not _has(config, *rule.options):
            continue
        if not rule.check(config):
            values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
            raise ConfigError(f"{model}: {rule.message.format(**values)}")
