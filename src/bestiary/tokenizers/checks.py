"""The checks every tokenizer shares: what counts as a token id, a list of special tokens, a file.

Bad input must fail loudly, never decode to the wrong text:

- `token_id_list(ids, vocab_size)`: what `decode` accepts. Python ints, lists of them, 1-D integer
  tensors and arrays. A float tensor (logits, or ids that went through a float op) would be
  truncated by `int()`, so it is refused; an id outside 0..vocab_size-1 is refused naming the id,
  its position and the vocabulary size (a negative id would otherwise index from the end).
- `special_token_list(value, argument)`: a bare string where a list of special tokens belongs
  would be iterated character by character ("<|endoftext|>" -> "<", "|", "e", ...).
- `load_tokenizer_file(path, what, build)`: a tokenizer file read through `bestiary.io`, whose
  inconsistencies (found by the tokenizer's own constructor) come back naming the file.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from bestiary.io import FileFormatError, read_json

__all__ = [
    "TOKENIZER_FILE_FIX",
    "as_token_id",
    "load_tokenizer_file",
    "require_fields",
    "special_token_list",
    "token_id_list",
]

T = TypeVar("T")

# What to do about a broken tokenizer file. Retraining is no fix: a new tokenizer numbers tokens
# differently, so a model trained with the old ids would read nonsense.
TOKENIZER_FILE_FIX = (
    "save it again from the tokenizer object that wrote it (tok.save(path)) or restore a backup copy; "
    "a newly trained tokenizer numbers tokens differently, so models trained with this file would not match it"
)


def as_token_id(value: Any, where: str) -> int:
    """`value` as a token id (an int >= 0). Refuses floats (97.0 from a hand-edited file would
    silently become 97) and bools (True is an int in Python, never a meaningful id)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{where} must be an integer token id, got {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{where} is {value}, but token ids are >= 0")
    return int(value)


def _integer_dtype_or_raise(dtype: Any) -> None:
    """Refuse tensors and arrays whose dtype is not an integer type (floats, bools, complex)."""
    if isinstance(dtype, torch.dtype):
        is_integer = not (dtype.is_floating_point or dtype.is_complex or dtype == torch.bool)
        name = str(dtype).removeprefix("torch.")
    else:
        is_integer = np.issubdtype(dtype, np.integer)
        name = str(dtype)
    if not is_integer:
        raise TypeError(f"token ids must be integers, got {name}")


def token_id_list(ids: Any, vocab_size: int) -> list[int]:
    """The ids to decode as a list of Python ints, each checked to lie in 0..vocab_size-1.

    Accepts an int, an iterable of ints, or a 0-D/1-D integer tensor or array. Raises TypeError
    for text, floats and float/bool tensors; ValueError for a 2-D batch and for out-of-range ids.
    """
    if isinstance(ids, str | bytes):
        raise TypeError(f"decode takes token ids, not {type(ids).__name__}; use encode to turn text into ids")
    if isinstance(ids, torch.Tensor | np.ndarray):
        _integer_dtype_or_raise(ids.dtype)
        if ids.ndim > 1:
            raise ValueError(
                f"decode takes one sequence of ids (0-D or 1-D), got shape {tuple(ids.shape)}; "
                "decode each row of a batch separately, e.g. tok.decode(ids[0])"
            )
        ids = ids.tolist()  # a 0-D tensor becomes a single int, handled below
    if isinstance(ids, numbers.Integral) and not isinstance(ids, bool):
        ids = [ids]
    if not isinstance(ids, Iterable):
        raise TypeError(f"decode takes an int or a sequence of ints, got {type(ids).__name__}")
    out: list[int] = []
    for position, value in enumerate(ids):
        if isinstance(value, torch.Tensor | np.ndarray | np.generic):  # list(tensor) yields 0-D tensors
            _integer_dtype_or_raise(value.dtype)
            value = value.item() if value.ndim == 0 else value
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"token ids must be integers, got {type(value).__name__} {value!r} at position {position}"
            )
        if not 0 <= value < vocab_size:
            raise ValueError(
                f"token id {value} at position {position} is not in the vocabulary: ids run from 0 to "
                f"{vocab_size - 1} (vocab_size {vocab_size})"
            )
        out.append(int(value))
    return out


def special_token_list(value: Any, argument: str) -> list[str]:
    """The special tokens of an argument that takes several of them, checked: a list (or other
    iterable) of non-empty strings, never a bare string."""
    if isinstance(value, str):
        raise TypeError(
            f"{argument} takes a list of special tokens, got the string {value!r}, which would be read "
            f"character by character; wrap it in a list: [{value!r}]"
        )
    if not isinstance(value, Iterable):
        raise TypeError(f"{argument} takes a list of special-token strings, got {type(value).__name__}")
    tokens = list(value)
    for token in tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"{argument}: special tokens must be non-empty strings, got {token!r}")
    return tokens


def require_fields(data: dict, fields: dict[str, type | tuple[type, ...]]) -> None:
    """Check that a tokenizer file's JSON object has each field with the right JSON type."""
    for name, kind in fields.items():
        if name not in data:
            raise ValueError(f"its field {name!r} is missing")
        if not isinstance(data[name], kind):
            expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise ValueError(f"its field {name!r} is a {type(data[name]).__name__}, not a {expected}")


def load_tokenizer_file(path: str | Path, what: str, build: Callable[[dict], T]) -> T:
    """Read a tokenizer's JSON file and `build` the tokenizer from it; any inconsistency the build
    finds (a ValueError or TypeError) is raised as a `FileFormatError` naming the file."""
    data = read_json(path, what=what, fix=TOKENIZER_FILE_FIX)
    try:
        return build(data)
    except (ValueError, TypeError) as err:
        raise FileFormatError(path, what, str(err).rstrip("."), TOKENIZER_FILE_FIX) from err
