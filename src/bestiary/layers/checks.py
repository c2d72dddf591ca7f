"""Input validation shared by every model, at its boundary: a wrong shape gets an error naming the
expected shape; a token id outside the vocabulary gets an error naming the id, where it is, and the
vocabulary size (inside torch it would be an opaque index error, or on a GPU a device-side assert)."""

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


def check_tokens(tokens: torch.Tensor, vocab_size: int, *, name: str = "tokens") -> None:
    """Token ids (B, T) must be integers in 0 .. vocab_size - 1.

    A float tensor is refused rather than truncated (2.7 is not token 2), and an id out of range is
    named with its position, so a tokenizer / model mismatch is found at once."""
    check_shape(tokens, "B T", name=name)
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        raise TypeError(f"{name} must be integer token ids (torch.long), got {tokens.dtype}")
    if tokens.numel() == 0:
        return
    bad = (tokens < 0) | (tokens >= vocab_size)
    if not bool(bad.any()):  # one device sync per call: this runs on every decoding step
        return
    row, col = (int(i) for i in bad.nonzero()[0])
    raise ValueError(
        f"{name}[{row}, {col}] = {int(tokens[row, col])} is not a token id of this model: the vocabulary "
        f"has {vocab_size} ids (0..{vocab_size - 1}). Was the text encoded with another tokenizer?"
    )
