"""Helpers shared by the convolutional model tests. (Imported by module name: pytest puts this folder
on sys.path.)"""

from __future__ import annotations

import torch


def copy_in_order(ours: torch.nn.Module, theirs: list[tuple[str, torch.Tensor]]) -> None:
    """Copy a reference state dict into ours tensor by tensor, in order, checking every shape.

    The order of `theirs` is arranged by the caller to follow our module order; a mismatch in
    any shape (a missing bias, a wrong width) fails loudly.
    """
    mine = ours.state_dict()
    assert len(mine) == len(theirs), f"{len(mine)} tensors in ours, {len(theirs)} in the reference"
    new = {}
    for (name, tensor), (their_name, their_tensor) in zip(mine.items(), theirs):
        assert tensor.shape == their_tensor.shape, f"{name} {tuple(tensor.shape)} vs {their_name}"
        new[name] = their_tensor.clone()
    ours.load_state_dict(new)


def randomize_batchnorm_statistics(model: torch.nn.Module) -> None:
    """Non-trivial BatchNorm running statistics and scales, so that copying them is checked too."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.uniform_(0.5, 1.5)
