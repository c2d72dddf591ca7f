"""Where offline data lives, and the error that says how to install it when it doesn't.

Every loader in `bestiary.data` looks for its source in the same order:

1. the cache folder, `$BESTIARY_DATA` (default `~/.cache/bestiary`): put a copy there to
   override anything installed;
2. the place an installer leaves it: a Debian package path, a Python package (found with
   `importlib`), or an npm `node_modules` folder;
3. otherwise it raises `DataSourceMissing`, whose message names the command that installs it.

Nothing here downloads: our machines and CI reach only package registries, so data must come
from a package that an installer put on disk.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "REPO_ROOT",
    "ChecksumMismatch",
    "DataSourceMissing",
    "data_home",
    "find_npm_package",
    "npm_search_roots",
    "sha256_file",
    "verify_sha256",
]

# src/bestiary/data/_paths.py -> the repository root (where `npm install` leaves node_modules/).
REPO_ROOT = Path(__file__).resolve().parents[3]


class DataSourceMissing(FileNotFoundError):
    """A data source is not installed. The message lists where we looked and how to install it."""

    def __init__(self, source: str, install: str, searched: Iterable[Path | str] = ()):
        self.source = source
        self.install = install
        self.searched = [str(p) for p in searched]
        where = "".join(f"\n  - {p}" for p in self.searched)
        looked = f" Looked in:{where}" if where else ""
        super().__init__(
            f"{source} is not installed.{looked}\n"
            f"Install it with:\n  {install}\n"
            f"or put a copy under the cache folder {data_home()} (set BESTIARY_DATA to move it)."
        )


class ChecksumMismatch(ValueError):
    """A data file's sha256 differs from the one recorded for it (corrupt or a different file)."""


def data_home() -> Path:
    """The cache folder: `$BESTIARY_DATA` if set, else `~/.cache/bestiary` (it need not exist)."""
    env = os.environ.get("BESTIARY_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bestiary"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks so large files never sit in memory twice."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise `ChecksumMismatch` unless the file's sha256 equals `expected` (hex)."""
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumMismatch(
            f"{path}: sha256 is {actual}, expected {expected}. The file is corrupt or is not the "
            "published one; delete it and reinstall the source (or pass verify=False to skip the check)."
        )


@functools.lru_cache(maxsize=1)
def _global_npm_roots() -> tuple[Path, ...]:
    """Folders where `npm install -g` puts packages: the usual prefixes plus `npm root -g`."""
    roots = [Path("/usr/lib/node_modules"), Path("/usr/local/lib/node_modules")]
    prefix = os.environ.get("NPM_CONFIG_PREFIX")
    if prefix:
        roots.insert(0, Path(prefix) / "lib" / "node_modules")
    npm = shutil.which("npm")
    if npm:
        # Asking npm is the only reliable way to find a custom global prefix; it costs ~0.3 s,
        # which is why the answer is cached for the life of the process.
        try:
            out = subprocess.run([npm, "root", "-g"], capture_output=True, text=True, timeout=20, check=False)
            if out.returncode == 0 and out.stdout.strip():
                roots.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass
    return tuple(dict.fromkeys(roots))  # de-duplicate, keep order


def npm_search_roots() -> list[Path]:
    """`node_modules` folders to search, in order: cache, current folder, repository root, global."""
    roots = [data_home() / "node_modules", Path.cwd() / "node_modules", REPO_ROOT / "node_modules"]
    roots += list(_global_npm_roots())
    return list(dict.fromkeys(roots))


def find_npm_package(name: str, must_contain: str, *, install: str, source: str) -> Path:
    """Folder of npm package `name` holding the relative path `must_contain`, or `DataSourceMissing`."""
    candidates = [root / name for root in npm_search_roots()]
    for folder in candidates:
        if (folder / must_contain).exists():
            return folder
    raise DataSourceMissing(source, install, candidates)
