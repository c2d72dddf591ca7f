"""Reading files we did not just write ourselves: one guarded path for every format.

A tokenizer file, a checkpoint, a cached dataset or a downloaded model can be truncated (a
killed process, a full disk), corrupted, or simply be the wrong file. Parsed unguarded, each gives
a bare `JSONDecodeError`, `BadGzipFile` or `SafetensorError` that names neither the file nor a way
out. Every reader here raises `FileFormatError` instead, which names the file, says what was
expected, what went wrong, and what to do (`fix`: delete a cache, fall back to an older
checkpoint, reinstall a package):

    data = read_json(path, what="a BPE tokenizer file", fix="save the tokenizer again")
    tensors = read_safetensors(path, what="checkpoint weights", fix="resume from an earlier step")

No pickle anywhere: tensors are read from safetensors only.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CheckpointMismatchError",
    "FileFormatError",
    "open_maybe_gzip",
    "read_all",
    "read_json",
    "read_safetensors",
    "read_text",
]


class FileFormatError(ValueError):
    """A file that is missing, truncated, corrupted or not what it should be."""

    def __init__(self, path: str | os.PathLike, what: str, problem: str, fix: str = ""):
        self.path, self.what, self.problem, self.fix = Path(path), what, problem, fix
        message = f"{self.path}: expected {what}, but {problem}."
        super().__init__(message + (f" To fix: {fix}." if fix else ""))


class CheckpointMismatchError(ValueError):
    """A checkpoint (our own, or converted from `transformers`) that does not fit the model or
    optimizer: names the tensor (or field) and both shapes, dtypes or types. Raised before anything
    was changed."""


def _require_file(path: Path, what: str, fix: str) -> None:
    if not path.exists():
        raise FileFormatError(path, what, "the file does not exist", fix)
    if not path.is_file():
        raise FileFormatError(path, what, "it is a folder, not a file", fix)


def read_text(path: str | os.PathLike, *, what: str, fix: str = "") -> str:
    """The file's text (UTF-8)."""
    path = Path(path)
    _require_file(path, what, fix)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise FileFormatError(
            path, what, f"it is not UTF-8 text ({err.reason} at byte {err.start})", fix
        ) from err


def read_json(path: str | os.PathLike, *, what: str, fix: str = "", kind: type = dict) -> Any:
    """The file parsed as JSON; its top level must be a `kind` (dict by default)."""
    text = read_text(path, what=what, fix=fix)
    if not text.strip():
        raise FileFormatError(path, what, "the file is empty", fix)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        # a string left open runs to the end of the file: also a file cut short
        cut_short = err.pos >= len(text.rstrip()) or err.msg.startswith("Unterminated string")
        where = "it ends in the middle" if cut_short else f"line {err.lineno}, column {err.colno}"
        raise FileFormatError(
            path, what, f"it is not valid JSON ({err.msg}; {where}) - truncated or corrupted", fix
        ) from err
    if not isinstance(data, kind):
        raise FileFormatError(
            path, what, f"its top level is a {type(data).__name__}, not a {kind.__name__}", fix
        )
    return data


def read_safetensors(path: str | os.PathLike, *, what: str, fix: str = "") -> dict[str, Any]:
    """Tensors from a safetensors file (never pickle)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    _require_file(path, what, fix)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise FileFormatError(
            path, what, f"it is not a readable safetensors file ({err}) - truncated or corrupted", fix
        ) from err


def open_maybe_gzip(path: str | os.PathLike, *, what: str, fix: str = "") -> IO[bytes]:
    """A binary file object; `.gz` files are decompressed (a bad gzip header is caught here, and a
    truncated stream raises FileFormatError from `read_all`)."""
    path = Path(path)
    _require_file(path, what, fix)
    if path.suffix != ".gz":
        return open(path, "rb")
    handle = gzip.open(path, "rb")  # noqa: SIM115 -- returned to the caller, who closes it
    try:
        handle.peek(1)  # reads the header now: a file that is not gzip fails here, with its name
    except (gzip.BadGzipFile, OSError, EOFError) as err:
        handle.close()
        raise FileFormatError(path, what, f"it is not a gzip file ({err})", fix) from err
    return handle


def read_all(path: str | os.PathLike, *, what: str, fix: str = "") -> bytes:
    """All bytes of the file (decompressed if `.gz`)."""
    with open_maybe_gzip(path, what=what, fix=fix) as handle:
        try:
            return handle.read()
        except (gzip.BadGzipFile, OSError, EOFError) as err:
            raise FileFormatError(path, what, f"it is cut short or corrupted ({err})", fix) from err
