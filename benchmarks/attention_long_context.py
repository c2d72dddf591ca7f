"""Long-context attention on CPU: forward + backward time and peak memory of softmax attention
(PyTorch's fused SDPA and our plain-matmul form) against linear attention (our chunkwise form,
Lightning Attention's block form, and FlashLinearAttention's recomputing backward), at growing
sequence lengths.

    .venv/bin/python benchmarks/attention_long_context.py            # T = 512, 2048, 8192
    .venv/bin/python benchmarks/attention_long_context.py --quick    # a smoke run, small T, in-process
    .venv/bin/python benchmarks/attention_long_context.py --lengths 512 1024 2048 4096 8192

Shapes: batch 1, 4 heads, head_dim 64, float32, causal. Softmax attention costs O(T^2 d) time and
(for the plain form) O(T^2) memory; linear attention O(T C d + T d^2) time with chunks of C = 64
and O(T d) memory, so past some length (the crossover) it wins, and the gap grows with T.

Threads: one by default (`--threads`). The chunkwise forms run many small matmuls, one chunk after
another; on a shared, oversubscribed CPU (our 2-core machine runs several jobs), intra-op threads
waiting for each other at every small op made them 10x slower, while one thread is stable.

Time: median of `--repeats` forward+backward passes after one warm-up, in seconds.
Peak memory: each (method, T) runs in its own subprocess; we read the process's peak resident set
size (resource.getrusage(RUSAGE_SELF).ru_maxrss) after the run and subtract the peak after the
inputs were made, so it is the extra memory the forward + backward needed (MiB). Not
tracemalloc (which does not see torch's allocator).

Adding a method (a block-sparse attention, say): write a function (q, k, v) -> out, each
(B, H, T, D), causal, and register it with `add_method("name", fn)` (or pass `methods=` to
`run_table`): it joins the table and the crossover report.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.linear_attention import chunkwise_parts, elu_plus_one, linear_attention
from bestiary.models.attention.flash_linear_attention import ChunkwiseLinearAttention

Method = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
HEADS, HEAD_DIM, CHUNK = 4, 64, 64


def sdpa_softmax(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def manual_softmax(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + causal mask) v with plain matmuls: the T x T matrix is stored."""
    return scaled_dot_product_attention(q, k, v, is_causal=True, manual=True)


def chunkwise_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Katharopoulos' linear attention (elu + 1 features, normaliser), chunkwise form."""
    out, _ = linear_attention(
        elu_plus_one(q), elu_plus_one(k), v, mode="chunkwise", chunk_size=CHUNK, normalize=True
    )
    return out


def lightning(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Lightning Attention-2: swish features, per-head decay, intra-block + inter-block parts."""
    log_decay = -(2.0 ** (-8.0 * torch.arange(1, q.shape[1] + 1) / q.shape[1]))  # ALiBi-like slopes
    intra, inter, _ = chunkwise_parts(F.silu(q), F.silu(k), v, log_decay, chunk_size=CHUNK)
    return intra + inter


def flash_linear(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The same linear attention through FlashLinearAttention's recomputing backward (only q, k, v
    are kept), with the elu + 1 features and no normaliser."""
    return ChunkwiseLinearAttention.apply(elu_plus_one(q), elu_plus_one(k), v, CHUNK)


METHODS: dict[str, Method] = {
    "sdpa softmax": sdpa_softmax,
    "manual softmax": manual_softmax,
    "chunkwise linear": chunkwise_linear,
    "lightning": lightning,
    "flash linear (recompute)": flash_linear,
}
LINEAR = ("chunkwise linear", "lightning", "flash linear (recompute)")
BUILT_IN = dict(METHODS)  # what a fresh subprocess knows by name


def add_method(name: str, fn: Method) -> None:
    """The hook: any causal attention (q, k, v) -> out, shapes (B, H, T, D), joins the table."""
    METHODS[name] = fn


def _inputs(T: int) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(0)
    return tuple(torch.randn(1, HEADS, T, HEAD_DIM, requires_grad=True) for _ in range(3))


def _max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure(fn: Method, T: int, repeats: int) -> dict[str, float]:
    """Forward + backward time (median, s) and the extra peak RSS (MiB) of one method at length T,
    in this process: call it in a fresh subprocess for a clean peak (`run_case`)."""
    q, k, v = _inputs(T)
    baseline = _max_rss_mib()
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        fn(q, k, v).sum().backward()
        if i:  # the first pass is a warm-up
            times.append(time.perf_counter() - start)
        q.grad = k.grad = v.grad = None
    return {"seconds": statistics.median(times), "peak_mib": _max_rss_mib() - baseline}


def run_case(name: str, T: int, repeats: int) -> dict[str, float]:
    """`measure` in a fresh Python process, so each peak-memory number is its own."""
    command = [sys.executable, __file__, "--case", name, "--length", str(T), "--repeats", str(repeats)]
    command += ["--threads", str(torch.get_num_threads())]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_table(
    lengths: list[int], repeats: int, methods: dict[str, Method] | None = None, *, in_process: bool = False
) -> dict:
    """Measure every method at every length; print a markdown table and the crossover lengths."""
    methods = METHODS if methods is None else methods
    # the built-in methods run in a subprocess each (a clean memory peak); a fresh process does not
    # know methods added at run time, so with one of those the table runs here (rougher peaks)
    # (in_process=True, the --quick smoke run, skips the subprocesses: faster, rougher peaks)
    in_process = in_process or any(BUILT_IN.get(name) is not fn for name, fn in methods.items())
    results: dict[tuple[str, int], dict[str, float]] = {}
    print(f"| method | {' | '.join(f'T={T} time (s) / peak (MiB)' for T in lengths)} |")
    print("|---|" + "---|" * len(lengths))
    for name, fn in methods.items():
        cells = []
        for T in lengths:
            results[name, T] = measure(fn, T, repeats) if in_process else run_case(name, T, repeats)
            cells.append(f"{results[name, T]['seconds']:.4f} / {results[name, T]['peak_mib']:.0f}")
        print(f"| {name} | {' | '.join(cells)} |", flush=True)
    for name in (n for n in LINEAR if n in methods and "sdpa softmax" in methods):
        faster = [T for T in lengths if results[name, T]["seconds"] < results["sdpa softmax", T]["seconds"]]
        slower = [T for T in lengths if T not in faster]
        if not faster:
            crossover = f"beyond T={lengths[-1]}"
        elif slower and max(slower) > min(faster):
            crossover = f"T={min(faster)} (not monotone: slower again at T={max(slower)})"
        else:
            crossover = f"T={min(faster)}" + (f" (slower at T={max(slower)})" if slower else "")
        speedup = results["sdpa softmax", lengths[-1]]["seconds"] / results[name, lengths[-1]]["seconds"]
        print(f"{name}: faster than SDPA from {crossover} on; {speedup:.1f}x SDPA's speed at T={lengths[-1]}")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="small lengths, one repeat, one process (a smoke run)"
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), help="a subset of the methods")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (see the docstring)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # internal: one measurement, JSON out
    parser.add_argument("--length", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.case is not None:
        print(json.dumps(measure(METHODS[args.case], args.length, args.repeats)))
        return
    lengths, repeats = ([128, 512], 1) if args.quick else (args.lengths, args.repeats)
    print(
        f"B=1, H={HEADS}, head_dim={HEAD_DIM}, float32, causal, {torch.get_num_threads()} threads, chunk {CHUNK}"
    )
    methods = METHODS if args.methods is None else {name: METHODS[name] for name in args.methods}
    run_table(lengths, repeats, methods, in_process=args.quick)


if __name__ == "__main__":
    main()
