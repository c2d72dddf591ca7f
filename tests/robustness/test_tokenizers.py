"""Tokenizers refuse bad input instead of producing the wrong text.

- Tokenizer files are checked on load: a BPE merge that reuses an id (which used to load and then
  decode to the wrong text), repeated tokens, gaps in the ids, special tokens colliding with
  ordinary ones, floats where ids belong. Each error is a `FileFormatError` naming the file, the
  first inconsistency and the fix.
- `decode` takes integer ids only: float tensors are refused (not truncated), and an id outside
  0..vocab_size-1 (negative ones included) is refused naming the id, its position and the size.
- A bare string where a list of special tokens belongs is refused (it would be read character by
  character), and arguments easy to swap by position are keyword-only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bestiary.data.text import CharVocab
from bestiary.io import FileFormatError
from bestiary.tokenizers import BPETokenizer, CharTokenizer, WordTokenizer, load_tokenizer

SAVE_AGAIN = "save it again from the tokenizer object that wrote it"
TEXT = "the cat sat on the mat; the cat ate the rat. " * 20


@pytest.fixture(scope="module")
def bpe() -> BPETokenizer:
    return BPETokenizer.train(TEXT, vocab_size=300, special_tokens=["<|endoftext|>"])


def bpe_file(tmp_path: Path, **changes) -> Path:
    """A BPE tokenizer file: 256 bytes, merges a+b -> 256 and (256)+c -> 257, one special token,
    with `changes` applied to its JSON fields."""
    data = {
        "type": "byte_bpe",
        "version": 1,
        "pattern": None,
        "byte_ids": list(range(256)),
        "merges": [[97, 98, 256], [256, 99, 257]],
        "special_tokens": {"<|endoftext|>": 258},
    }
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(data | changes))
    return path


def load_fails(path: Path, *fragments: str, loader=BPETokenizer.load) -> FileFormatError:
    """Loading `path` raises FileFormatError naming the file, each fragment, and the fix."""
    with pytest.raises(FileFormatError) as err:
        loader(path)
    message = str(err.value)
    assert str(path) in message, message
    for fragment in (*fragments, SAVE_AGAIN):
        assert fragment in message, (fragment, message)
    return err.value


# ------------------------------------------------------------------------- BPE file consistency
def test_the_reference_file_loads_and_decodes(tmp_path):
    tok = BPETokenizer.load(bpe_file(tmp_path))
    assert tok.encode("abc") == [257] and tok.decode([257, 258]) == "abc<|endoftext|>"
    assert tok.vocab_size == 259


def test_bpe_merge_reusing_an_id_is_refused_instead_of_decoding_wrong_text(tmp_path):
    # The second merge claims id 256 again: loaded unchecked, id 256 would decode as "abc"
    # while the text "ab" still encodes to 256 - a silent wrong answer.
    path = bpe_file(tmp_path, merges=[[97, 98, 256], [256, 99, 256]], special_tokens={})
    load_fails(path, "merge 1 (256, 99) -> 256 reuses id 256", "b'ab'")


def test_bpe_merge_reusing_a_byte_id_is_refused(tmp_path):
    load_fails(bpe_file(tmp_path, merges=[[97, 98, 120]], special_tokens={}), "reuses id 120", "b'x'")


def test_bpe_merge_using_an_id_not_yet_created_is_refused(tmp_path):
    path = bpe_file(tmp_path, merges=[[257, 99, 256], [97, 98, 257]], special_tokens={})
    load_fails(path, "merge 0 (257, 99) -> 256 uses id 257, which no byte or earlier merge created")


def test_bpe_same_pair_merged_twice_is_refused(tmp_path):
    path = bpe_file(tmp_path, merges=[[97, 98, 256], [97, 98, 257]], special_tokens={})
    load_fails(path, "merge 1 (97, 98) -> 257 merges the same pair as merge 0")


def test_bpe_duplicate_byte_ids_are_refused(tmp_path):
    byte_ids = list(range(256))
    byte_ids[98] = 97  # bytes 'a' and 'b' share a token
    load_fails(bpe_file(tmp_path, byte_ids=byte_ids), "gives id 97 to both byte 97 and byte 98")


def test_bpe_special_token_colliding_with_a_merge_is_refused(tmp_path):
    path = bpe_file(tmp_path, special_tokens={"<|endoftext|>": 257})
    load_fails(path, "special token '<|endoftext|>' reuses id 257", "b'abc'")


def test_bpe_two_special_tokens_sharing_an_id_are_refused(tmp_path):
    path = bpe_file(tmp_path, special_tokens={"<|a|>": 258, "<|b|>": 258})
    load_fails(path, "special tokens '<|a|>' and '<|b|>' share id 258")


def test_bpe_gap_in_the_ids_is_refused(tmp_path):
    load_fails(
        bpe_file(tmp_path, special_tokens={"<|endoftext|>": 1000}), "id 258 is unused", "largest id is 1000"
    )


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"merges": [[97.0, 98, 256]]}, "merge 0 left must be an integer token id, got 97.0"),
        ({"merges": [[97, 98]]}, "merge 0 must be three ids"),
        ({"merges": [[97, -98, 256]]}, "merge 0 right is -98"),
        ({"byte_ids": list(range(255))}, "256 token ids, one per byte value, got 255"),
        ({"special_tokens": {"<|endoftext|>": True}}, "must be an integer token id, got True"),
        ({"special_tokens": {"": 258}}, "non-empty strings"),
        ({"merges": {"0": [97, 98, 256]}}, "field 'merges' is a dict, not a list"),
        ({"pattern": "(unclosed"}, "not a valid regular expression"),
        ({"version": 2}, "format version 2"),
        ({"type": "char"}, "its type is 'char', not 'byte_bpe'"),
    ],
)
def test_bpe_malformed_fields_are_refused(tmp_path, changes, fragment):
    load_fails(bpe_file(tmp_path, **changes), fragment)


def test_bpe_missing_field_is_refused(tmp_path):
    path = bpe_file(tmp_path)
    data = json.loads(path.read_text())
    del data["byte_ids"]
    path.write_text(json.dumps(data))
    load_fails(path, "field 'byte_ids' is missing")


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda raw: raw[: len(raw) // 2], "truncated or corrupted"),
        (lambda raw: b"", "the file is empty"),
        (lambda raw: b"\x89PNG\r\n\x1a\n" + bytes(range(256)), "not UTF-8"),
        (lambda raw: b"[" + raw + b"]", "top level is a list, not a dict"),
    ],
)
def test_damaged_saved_tokenizer_files_are_refused_by_every_loader(tmp_path, bpe, damage, fragment):
    path = tmp_path / "bpe.json"
    bpe.save(path)
    path.write_bytes(damage(path.read_bytes()))
    load_fails(path, fragment, loader=BPETokenizer.load)
    load_fails(path, fragment, loader=load_tokenizer)


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    load_fails(tmp_path, "a folder, not a file", loader=load_tokenizer)
    load_fails(tmp_path / "nope.json", "does not exist", loader=CharTokenizer.load)


def test_load_tokenizer_refuses_unknown_type(tmp_path):
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"type": "sentencepiece"}))
    load_fails(
        path, "its type is 'sentencepiece', not one of ['byte_bpe', 'char', 'word']", loader=load_tokenizer
    )


# ------------------------------------------------------------------- char / word file consistency
@pytest.mark.parametrize(
    ("chars", "unk", "fragment"),
    [
        (["a", "b", "b", "c"], None, "chars[2] 'b' repeats chars[1] 'b'"),
        (["b", "a"], None, "chars[1] 'a' is out of sorted order after chars[0] 'b'"),
        (["a", "bc"], None, "chars[1] is 'bc', not a single character"),
        (["a", "b"], "?", "unk '?' is not in the vocabulary"),
    ],
)
def test_char_file_inconsistencies_are_refused(tmp_path, chars, unk, fragment):
    path = tmp_path / "char.json"
    path.write_text(json.dumps({"type": "char", "chars": chars, "unk": unk}))
    load_fails(path, fragment, loader=CharTokenizer.load)
    load_fails(path, fragment, loader=load_tokenizer)


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        (["the", " ", "cat", "the"], "token 'the' appears twice (ids 1 and 4)"),
        (["the", "<unk>", "cat"], "tokens[1] is '<unk>', which is implied as id 0"),
        (["the", 7], "token 2 is 7"),
    ],
)
def test_word_file_inconsistencies_are_refused(tmp_path, tokens, fragment):
    path = tmp_path / "word.json"
    path.write_text(json.dumps({"type": "word", "tokens": tokens, "pattern": r"\w+|\s+"}))
    load_fails(path, fragment, loader=WordTokenizer.load)


def test_saved_files_round_trip_through_the_checks(tmp_path, bpe):
    """The checks accept everything our own save() writes (they are not just refusing)."""
    char, word = CharTokenizer.train(TEXT, unk="?"), WordTokenizer.train(TEXT, max_vocab=8)
    for name, tok in (("bpe", bpe), ("char", char), ("word", word)):
        tok.save(tmp_path / f"{name}.json")
        again = load_tokenizer(tmp_path / f"{name}.json")
        assert type(again) is type(tok) and again.encode("the cat") == tok.encode("the cat")


# ------------------------------------------------------------------------------------- decode
def _tokenizers() -> dict:
    return {
        "bpe": BPETokenizer.train(TEXT, vocab_size=280, special_tokens=["<|endoftext|>"]),
        "char": CharTokenizer.train(TEXT),
        "word": WordTokenizer.train(TEXT),
        "char_vocab": CharVocab(sorted(set(TEXT))),
    }


TOKENIZERS = _tokenizers()


def _vocab_size(tok) -> int:
    return len(tok)


@pytest.mark.parametrize("name", TOKENIZERS)
def test_decode_accepts_ints_lists_and_integer_tensors_alike(name):
    tok = TOKENIZERS[name]
    ids = [int(i) for i in tok.encode("the cat")]
    expected = tok.decode(ids)
    assert expected == "the cat"
    assert tok.decode(torch.tensor(ids)) == expected
    assert tok.decode(torch.tensor(ids, dtype=torch.int32)) == expected
    assert tok.decode(np.array(ids, dtype=np.int64)) == expected
    assert tok.decode(list(torch.tensor(ids))) == expected  # 0-D tensors as elements
    assert tok.decode([np.int64(i) for i in ids]) == expected
    assert tok.decode(ids[0]) == tok.decode([ids[0]]) == tok.decode(torch.tensor(ids[0]))
    assert tok.decode([]) == ""


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize(
    ("ids", "dtype_name"),
    [
        (torch.tensor([1.0, 2.0]), "float32"),
        (torch.tensor([1, 2], dtype=torch.float16), "float16"),
        (torch.tensor([True, False]), "bool"),
        (np.array([1.0, 2.9]), "float64"),
        ([torch.tensor(1.0)], "float32"),
    ],
)
def test_decode_refuses_float_and_bool_tensors(name, ids, dtype_name):
    with pytest.raises(TypeError, match=f"token ids must be integers, got {dtype_name}"):
        TOKENIZERS[name].decode(ids)


@pytest.mark.parametrize("name", TOKENIZERS)
@pytest.mark.parametrize("bad", [2.0, True, "a", None])
def test_decode_refuses_non_integer_list_items_naming_position(name, bad):
    with pytest.raises(TypeError, match=r"token ids must be integers, got \w+ .* at position 1"):
        TOKENIZERS[name].decode([0, bad])


@pytest.mark.parametrize("name", TOKENIZERS)
def test_decode_refuses_out_of_range_ids_naming_id_position_and_size(name):
    tok = TOKENIZERS[name]
    size = _vocab_size(tok)
    for bad in (size, size + 1000, -1):
        for ids in ([0, 1, bad], torch.tensor([0, 1, bad]), np.array([0, 1, bad])):
            with pytest.raises(ValueError) as err:
                tok.decode(ids)
            message = str(err.value)
            assert f"token id {bad} at position 2" in message, message
            assert f"vocab_size {size}" in message and f"0 to {size - 1}" in message, message


@pytest.mark.parametrize("name", TOKENIZERS)
def test_decode_refuses_text_and_batches(name):
    tok = TOKENIZERS[name]
    with pytest.raises(TypeError, match="not str"):
        tok.decode("the cat")
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*tok.decode\(ids\[0\]\)"):
        tok.decode(torch.zeros(2, 3, dtype=torch.long))


def test_negative_id_no_longer_decodes_to_the_last_character():
    vocab = CharVocab(["a", "b", "z"])
    with pytest.raises(ValueError, match="token id -1 at position 0"):
        vocab.decode([-1])  # chars[-1] would have been "z"


def test_bpe_decode_bytes_and_token_bytes_share_the_checks(bpe):
    with pytest.raises(ValueError, match=f"vocab_size {bpe.vocab_size}"):
        bpe.token_bytes(bpe.vocab_size)
    with pytest.raises(TypeError, match="float32"):
        bpe.decode_bytes(torch.tensor([1.0]))


# --------------------------------------------------------------------- special tokens given as str
def test_special_tokens_as_a_bare_string_are_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"wrap it in a list: \['<\|endoftext\|>'\]"):
        BPETokenizer.train(TEXT, vocab_size=260, special_tokens="<|endoftext|>")
    tok = BPETokenizer.train(TEXT, vocab_size=260, special_tokens=["<|endoftext|>"])
    with pytest.raises(TypeError, match=r"wrap it in a list: \['<\|user\|>'\]"):
        tok.add_special_tokens("<|user|>")
    assert tok.vocab_size == 261  # nothing was added by the refused call
    with pytest.raises(TypeError, match=r"wrap it in a set: allowed_special=\{'<\|endoftext\|>'\}"):
        tok.encode("hi<|endoftext|>", allowed_special="<|endoftext|>")
    with pytest.raises(TypeError, match=r"disallowed_special=\{'<\|endoftext\|>'\}"):
        tok.encode("hi", disallowed_special="<|endoftext|>")
    assert tok.encode("hi<|endoftext|>", allowed_special={"<|endoftext|>"})[-1] == 260
    assert tok.encode("hi<|endoftext|>", allowed_special="all")[-1] == 260
    with pytest.raises(TypeError, match="must be a dict"):
        BPETokenizer(special_tokens=["<|endoftext|>"])  # a list where {text: id} belongs
    with pytest.raises(TypeError, match="wrap it in a list"):
        WordTokenizer("the cat")


def test_special_token_entries_must_be_non_empty_strings():
    with pytest.raises(ValueError, match="non-empty strings"):
        BPETokenizer.train(TEXT, vocab_size=260, special_tokens=["<|a|>", ""])
    with pytest.raises(ValueError, match="non-empty strings"):
        BPETokenizer.train(TEXT, vocab_size=260, special_tokens=[b"<|a|>"])


# -------------------------------------------------------------------------- keyword-only options
def test_arguments_easy_to_swap_by_position_are_keyword_only():
    with pytest.raises(TypeError):
        BPETokenizer([], list(range(256)))  # byte_ids by position
    with pytest.raises(TypeError):
        BPETokenizer.train(TEXT, 260, ["<|endoftext|>"])  # special_tokens by position
    with pytest.raises(TypeError):
        CharTokenizer("abc", "a")  # unk by position
    with pytest.raises(TypeError):
        WordTokenizer.train(TEXT, 10, r"\w+")  # pattern by position
    with pytest.raises(TypeError):
        TOKENIZERS["bpe"].encode("hi", "all")  # allowed_special by position


def test_constructor_checks_apply_in_memory_too():
    """The same checks guard tokenizers built in code (ValueError there, FileFormatError on load)."""
    with pytest.raises(ValueError, match="reuses id 256"):
        BPETokenizer([(97, 98, 256), (256, 99, 256)])
    with pytest.raises(ValueError, match="appears twice"):
        WordTokenizer(["a", "b", "a"])
