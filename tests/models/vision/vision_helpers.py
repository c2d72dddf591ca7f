"""Helpers shared by the vision model tests: copying reference weights by name, bad-input checks,
rounded parameter counts. (Imported by module name: pytest puts this folder on sys.path.)"""

from __future__ import annotations

import re

import pytest
import torch

import bestiary
from bestiary.layers.checks import ShapeError


def copy_renamed(
    ours: torch.nn.Module, theirs: dict[str, torch.Tensor], rules: list[tuple[str, str]]
) -> None:
    """Load `theirs` into `ours`, renaming each of our names by the regex `rules` (a model's
    `HF_NAMES`, applied in order); every reference tensor must be used."""
    mine = ours.state_dict()
    new, used = {}, set()
    for name, tensor in mine.items():
        their_name = name
        for pattern, replacement in rules:
            their_name = re.sub(pattern, replacement, their_name)
        assert their_name in theirs, f"{name} -> {their_name} is not in the reference"
        assert theirs[their_name].shape == tensor.shape, f"{name} vs {their_name}"
        new[name] = theirs[their_name].clone()
        used.add(their_name)
    ours.load_state_dict(new)
    unused = {k for k in theirs if k not in used and "num_batches_tracked" not in k}
    assert not unused, f"reference tensors not copied: {sorted(unused)[:5]}"


def assert_same_logits(ours, hf, rules, x, theirs=None) -> None:
    """Copy the reference weights (`theirs`, default all of `hf`'s) into `ours`, then both models
    must give the same logits on `x`."""
    copy_renamed(ours, hf.state_dict() if theirs is None else theirs, rules)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=1e-4, atol=1e-5)


def assert_rejects(model, cases: dict[tuple[int, ...], str]) -> None:
    """For each `shape: pattern`, a random input of that shape raises a ShapeError matching pattern."""
    for shape, pattern in cases.items():
        with pytest.raises(ShapeError, match=pattern):
            model(torch.randn(*shape))


def rounded_millions(preset: str) -> float:
    """A preset's parameter count in millions, rounded to 0.1 as model cards publish it (no weights allocated)."""
    with torch.device("meta"):
        model = bestiary.build(preset)
    return round(bestiary.count_params(model) / 1e6, 1)
