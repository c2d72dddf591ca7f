"""Where derived artefacts (converted checkpoints) are cached: $BESTIARY_DATA or ~/.cache/bestiary."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """The cache folder (created on demand), optionally a sub-folder of it."""
    root = Path(os.environ.get("BESTIARY_DATA") or Path.home() / ".cache" / "bestiary").expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
