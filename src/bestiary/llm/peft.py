"""Parameter-efficient fine-tuning hooks: adapters that wrap a model's `nn.Linear` layers by name.

A model never knows it is being adapted: it has no LoRA branches. An adapter is applied from
outside, after the model is built, by replacing chosen `nn.Linear` submodules with a wrapper that
holds the original layer and adds a trainable path beside it:

    model = bestiary.build("smollm2_135m")
    names = apply_lora(model, targets=("q_proj", "v_proj"), rank=8, alpha=16)   # freezes the rest
    ...train...
    merge_adapters(model)        # fold W + (alpha/r) B A back into plain nn.Linear layers

`wrap_linears` is the mechanism every adapter shares (LoRA now; DoRA, IA3 and friends next): it
matches layers by the last part of their name (`"q_proj"`), a dotted suffix (`"mixer.q_proj"`)
or a predicate, checks every match before changing anything, and then swaps them in.

LoRA: "LoRA: Low-Rank Adaptation of Large Language Models" (Hu et al., 2021, arXiv:2106.09685).
y = W x + (alpha / r) * B A x, with A (r, in) random and B (out, r) zero, so the adapted model
starts exactly equal to the base model and only r * (in + out) numbers per layer are trained.
Checked against `peft`'s LoRA with copied weights (tests/llm/test_peft.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

__all__ = ["LoRALinear", "apply_lora", "merge_adapters", "wrap_linears"]

Target = str | Iterable[str] | Callable[[str, nn.Linear], bool]


def _matcher(targets: Target) -> Callable[[str, nn.Linear], bool]:
    if callable(targets):
        return targets
    names = (targets,) if isinstance(targets, str) else tuple(targets)
    if not names:
        raise ValueError("targets is empty: name at least one layer, e.g. ('q_proj', 'v_proj')")
    return lambda name, _: any(name == t or name.endswith("." + t) for t in names)


def wrap_linears(model: nn.Module, targets: Target, wrap: Callable[[nn.Linear], nn.Module]) -> list[str]:
    """Replace every `nn.Linear` whose name matches `targets` by `wrap(linear)`; return their names.

    All-or-nothing: the matches are found and every wrapper is built (so a bad option, or no match
    at all, raises) before any module is replaced. Layers already wrapped are not nn.Linear any
    more, so they don't match twice.
    """
    matches = _matcher(targets)
    chosen = [
        name for name, module in model.named_modules() if type(module) is nn.Linear and matches(name, module)
    ]
    if not chosen:
        linears = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if type(m) is nn.Linear})
        raise ValueError(f"no nn.Linear matches {targets!r}; this model's Linear layers are named {linears}")
    wrappers = [wrap(model.get_submodule(name)) for name in chosen]
    for name, wrapper in zip(chosen, wrappers):
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name), child, wrapper)
    return chosen


class LoRALinear(nn.Module):
    """base(x) + (alpha / rank) * lora_B(lora_A(dropout(x))): a frozen Linear plus a low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if not isinstance(rank, int) or rank < 1:
            raise ValueError(f"rank must be an int >= 1, got {rank!r}")
        self.base = base
        self.rank, self.alpha = rank, alpha
        self.scaling = alpha / rank
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)  # (r, in)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)  # (out, r)
        # as in the paper and peft: A random (Kaiming-uniform), B zero -> the update starts at 0
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update this adapter adds to the base weight: (alpha / r) B A, shape (out, in)."""
        return self.scaling * self.lora_B.weight @ self.lora_A.weight

    def merged(self) -> nn.Linear:
        """A plain nn.Linear computing the same function (for inference without the extra matmuls)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None)
        linear = linear.to(self.base.weight.device, self.base.weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                linear.bias.copy_(self.base.bias)
        return linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.scaling * self.lora_B(self.lora_A(self.dropout(x)))


def apply_lora(
    model: nn.Module,
    targets: Target = ("q_proj", "v_proj"),
    *,
    rank: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    freeze_base: bool = True,
) -> list[str]:
    """Wrap the matching Linear layers in LoRA adapters; freeze everything else (by default).

    Returns the names of the adapted layers. Only the lora_A / lora_B matrices stay trainable."""
    names = wrap_linears(model, targets, lambda linear: LoRALinear(linear, rank, alpha, dropout))
    if freeze_base:
        for name, param in model.named_parameters():
            param.requires_grad = ".lora_A." in name or ".lora_B." in name
    return names


def merge_adapters(model: nn.Module) -> list[str]:
    """Replace every LoRALinear in the model by its merged nn.Linear; return their names."""
    names = [name for name, module in model.named_modules() if isinstance(module, LoRALinear)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        setattr(parent, child, getattr(parent, child).merged())
    return names
