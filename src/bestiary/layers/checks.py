"""Input validation shared by every model: a wrong shape gets an error naming the expected shape."""

from __future__ import annotations

import torch


class ShapeError(ValueError):
    """An input whose shape does not match what the model expects."""


def check_shape(x: torch.Tensor, expected: str, *, name: str = "input", **sizes: int) -> None:
    """Check `x` against a shape pattern such as "B T D" with some sizes fixed (`D=64`).

    Letters without a given size match anything; the number of dimensions must always match.
    The error names both shapes: "expected input of shape (B, T, D=64), got (2, 5, 32)".
    """
    dims = expected.split()
    ok = isinstance(x, torch.Tensor) and x.dim() == len(dims)
    if ok and all(d not in sizes or x.shape[i] == sizes[d] for i, d in enumerate(dims)):
        return  # the common case: no error message to build (this runs on every forward)
    wanted = ", ".join(f"{d}={sizes[d]}" if d in sizes else d for d in dims)
    if not isinstance(x, torch.Tensor):
        raise ShapeError(f"expected {name} to be a tensor of shape ({wanted}), got {type(x).__name__}")
    raise ShapeError(f"expected {name} of shape ({wanted}), got {tuple(x.shape)}")
