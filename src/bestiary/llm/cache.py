"""Where derived artefacts (converted checkpoints) are cached: $BESTIARY_DATA or ~/.cache/bestiary."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "require_folder"]


def cache_dir(*parts: str) -> Path:
    """The cache folder (created on demand), optionally a sub-folder of it."""
    root = Path(os.environ.get("BESTIARY_DATA") or Path.home() / ".cache" / "bestiary").expanduser()
    path = root.joinpath(*parts)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"{path}: the cache location is a file, not a folder. Set BESTIARY_DATA to a folder "
            "(or move the file away)."
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def require_folder(folder: str | os.PathLike, *, what: str, fix: str = "") -> Path:
    """`folder` as a Path, or FileNotFoundError naming it.

    Checked before calling `transformers`' `from_pretrained`: given a path that does not exist,
    it takes the string for a Hub repository id and fails with an unrelated network error.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        problem = "is a file, not a folder" if path.exists() else "does not exist"
        raise FileNotFoundError(f"{path}: the {what} {problem}." + (f" To fix: {fix}." if fix else ""))
    return path
