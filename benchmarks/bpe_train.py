"""BPE training speed: our incremental trainer vs a straightforward re-counting merge loop.

Both learn merges on the same ~1 MB of Shakespeare with GPT-2's pre-split pattern. The reference
is the textbook loop (as in Karpathy's minbpe): after every merge, count every adjacent pair of
every chunk again and rewrite every chunk. Ours (`BPETokenizer.train`) de-duplicates chunks,
keeps pair counts in a dict updated only for the words a merge touches, and picks the next pair
from a heap. The script asserts that both learned exactly the same merges (same tie-break: highest
count, then smallest pair), then prints one JSON line per trainer and one with the speed-up.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bpe_train.py [--chars 1000000] [--vocab-size 384]

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

from bestiary.data import tiny_shakespeare
from bestiary.tokenizers import BPETokenizer
from bestiary.tokenizers.bpe import train_bpe_naive


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--vocab-size", type=int, default=384)
    args = parser.parse_args()
    text = tiny_shakespeare()[: args.chars]

    start = time.perf_counter()
    ours = BPETokenizer.train(text, args.vocab_size)
    ours_s = time.perf_counter() - start
    print(
        json.dumps({"trainer": "bestiary", "seconds": round(ours_s, 3), "merges": len(ours.merges)}),
        flush=True,
    )

    start = time.perf_counter()
    ref = train_bpe_naive(text, args.vocab_size)
    ref_s = time.perf_counter() - start
    print(
        json.dumps({"trainer": "reference_recount", "seconds": round(ref_s, 3), "merges": len(ref)}),
        flush=True,
    )

    assert ours.merges == ref, "the two trainers learned different merges"
    print(
        json.dumps(
            {
                "benchmark": "bpe_train",
                "chars": len(text),
                "bytes": len(text.encode("utf-8")),
                "vocab_size": args.vocab_size,
                "identical_merges": True,
                "speedup": round(ref_s / ours_s, 1),
                "target_speedup": 20,
                "machine": platform.processor() or platform.machine(),
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
