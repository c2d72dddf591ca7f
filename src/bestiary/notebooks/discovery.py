"""Discovery: find the curriculum's notebooks and read what their file names and titles say.

A notebook is a jupytext percent file named `notebooks/<track>/<ID>_<slug>.py`. `discover()` finds
them all by glob, so a new file is picked up by `bestiary notebooks list`, by the build and by
`tests/test_notebooks.py` without being registered anywhere; `find()` picks some by ID.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

#: the curriculum's tracks, in the order the index shows them
TRACKS = ("foundations", "transformers", "architectures", "projects", "systems")
TRACK_TITLES = {
    "foundations": "F · Foundations (NumPy from scratch)",
    "transformers": "T · Transformers and language models",
    "architectures": "A · Architecture walkthroughs",
    "projects": "P · Projects",
    "systems": "S · Systems",
}
_STEM = re.compile(r"^(?P<id>[A-Z]\d{2})_(?P<slug>[a-z0-9_]+)$")
_HEADING = re.compile(r"^#\s+#{1,6}\s+(?P<title>.+?)\s*$")  # a markdown heading inside "# " comments


class NotebookError(KeyError):
    """An unknown notebook ID (or a malformed notebook file name)."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class NotebookInfo:
    """One notebook source file and what its name and first heading say about it."""

    id: str  # "F01"
    slug: str  # "numpy_neural_net"
    track: str  # "foundations"
    title: str  # the first markdown heading, without the "F01 ·" prefix
    path: Path

    @property
    def stem(self) -> str:
        return f"{self.id}_{self.slug}"


def repo_root(start: Path | None = None) -> Path:
    """The folder that holds `notebooks/`: $BESTIARY_ROOT, else the nearest parent of `start`
    (default: the working directory), else the source checkout this module lives in."""
    if os.environ.get("BESTIARY_ROOT"):
        return Path(os.environ["BESTIARY_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    checkout = Path(__file__).resolve().parents[3]  # src/bestiary/notebooks/discovery.py -> the checkout
    if (checkout / "notebooks").is_dir():
        return checkout
    raise NotebookError(
        f"no notebooks/ folder found above {here}; run from the Bestiary checkout or set BESTIARY_ROOT"
    )


def read_title(path: Path) -> str:
    """The first markdown heading of a percent-format notebook ("" if there is none)."""
    in_markdown = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line or "[md]" in line
            continue
        match = _HEADING.match(line) if in_markdown else None
        if match:
            return match["title"]
    return ""


def notebook_info(path: Path) -> NotebookInfo:
    """Parse `<track>/<ID>_<slug>.py` and read the notebook's title."""
    path = Path(path).resolve()
    match = _STEM.match(path.stem)
    if not match:
        raise NotebookError(
            f"{path.name}: notebook files are named <ID>_<slug>.py, e.g. F01_numpy_neural_net.py"
        )
    nb_id, slug = match["id"], match["slug"]
    title = read_title(path)
    # "F01 · A two-layer net" -> "A two-layer net": the ID has its own column everywhere we show it
    title = re.sub(rf"^{nb_id}\s*[·:\-—–|]\s*", "", title) or slug.replace("_", " ")
    return NotebookInfo(id=nb_id, slug=slug, track=path.parent.name, title=title, path=path)


def discover(root: Path | None = None) -> list[NotebookInfo]:
    """Every `notebooks/<track>/<ID>_<slug>.py` under `root`, in track order, then by ID."""
    folder = (root or repo_root()) / "notebooks"
    found = []
    for path in folder.glob("*/*.py"):
        if path.parent.name in TRACKS and _STEM.match(path.stem):
            found.append(notebook_info(path))
    order = {track: i for i, track in enumerate(TRACKS)}
    return sorted(found, key=lambda nb: (order[nb.track], nb.id))


def find(ids: Iterable[str], root: Path | None = None) -> list[NotebookInfo]:
    """The notebooks named by ID ("F01", case-insensitive) or stem ("F01_numpy_neural_net")."""
    notebooks = discover(root)
    by_key = {nb.id.lower(): nb for nb in notebooks} | {nb.stem.lower(): nb for nb in notebooks}
    chosen = []
    for raw in ids:
        key = Path(raw).stem.lower()
        if key not in by_key:
            close = difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(by_key[c].id for c in close)}?" if close else ""
            raise NotebookError(f"unknown notebook {raw!r}.{hint} (`bestiary notebooks list` lists all)")
        if by_key[key] not in chosen:
            chosen.append(by_key[key])
    return chosen
