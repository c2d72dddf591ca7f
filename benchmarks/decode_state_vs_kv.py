"""Decoding with a fixed-size state (Mamba) vs a growing KV cache (a transformer), on CPU.

What is measured: for a context of C tokens (C = 512 ... 8192), each model first reads the C
tokens into its cache (prefill, not timed), then decodes `--steps` more tokens one at a time with
the cache; we report the fastest (and the median) time of one such step and the cache's memory
(`Cache.nbytes()`).

    mamba          bestiary "mamba": d_model 256, 8 layers, N 16 (about 3.6M parameters); the cache
                   is a conv window and an SSM state per layer: the same size at every C
    decoder_only   bestiary "decoder_only" (Llama-style, RoPE, SwiGLU): d_model 256, 4 layers,
                   4 heads, d_ff 704 (about 3.3M parameters); the cache holds every past key and
                   value, so its size and the attention work per token grow linearly with C

Printed: one JSON line per context, then the summary (the ratio of per-token times at the longest
context, whether Mamba's per-token time stays within 20% of its mean and its memory constant);
the figure goes to build/benchmarks/decode_state_vs_kv.png.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/decode_state_vs_kv.py [--quick] [--steps 16]

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import torch

import bestiary

VOCAB = 256


def build_models(max_context: int, steps: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    mamba = bestiary.build("mamba", vocab_size=VOCAB, d_model=256, n_layers=8, d_state=16).eval()
    transformer = bestiary.build(
        "decoder_only",
        vocab_size=VOCAB,
        d_model=256,
        n_layers=4,
        n_heads=4,
        n_kv_heads=4,
        d_ff=704,
        max_seq_len=max_context + steps + 1,
    ).eval()
    return {"mamba": mamba, "decoder_only": transformer}


@torch.no_grad()
def decode_step_times(model: torch.nn.Module, context: int, steps: int) -> tuple[float, float, int]:
    """Fastest and median seconds per decoded token after `context` tokens, and the cache's bytes.

    The fastest of the steps is the least disturbed by other work on a shared machine; the flatness
    check uses it, the median is printed beside it."""
    generator = torch.Generator().manual_seed(context)
    prompt = torch.randint(0, VOCAB, (1, context), generator=generator)
    cache = model.init_cache(1)
    logits = model(prompt, cache=cache)  # prefill: not timed
    nbytes = cache.nbytes()
    token = logits[:, -1:].argmax(-1)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logits = model(token, cache=cache)
        times.append(time.perf_counter() - start)
        token = logits[:, -1:].argmax(-1)
    return min(times), statistics.median(times), nbytes


def plot(rows: list[dict], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    contexts = [r["context"] for r in rows]
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 4))
    for name, style in (("mamba", "o-"), ("decoder_only", "s-")):
        ax_time.plot(contexts, [r[f"{name}_ms_per_token"] for r in rows], style, label=name)
        ax_mem.plot(contexts, [r[f"{name}_cache_mb"] for r in rows], style, label=name)
    for ax, label in ((ax_time, "ms per decoded token"), (ax_mem, "cache memory (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("context length (tokens already read)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    ax_time.set_title("per-token decode time")
    ax_mem.set_title("decoding cache size")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="contexts 128 and 512, 4 steps (a smoke run)")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", default="build/benchmarks/decode_state_vs_kv.png")
    args = parser.parse_args()
    contexts, steps = ([128, 512], 4) if args.quick else ([512, 1024, 2048, 4096, 8192], args.steps)
    models = build_models(max(contexts), steps)
    params = {name: bestiary.count_params(m) for name, m in models.items()}
    rows = []
    for context in contexts:
        row: dict = {"benchmark": "decode_state_vs_kv", "context": context}
        for name, model in models.items():
            fastest, median, nbytes = decode_step_times(model, context, steps)
            row[f"{name}_ms_per_token"] = round(1000 * fastest, 3)
            row[f"{name}_median_ms_per_token"] = round(1000 * median, 3)
            row[f"{name}_cache_mb"] = round(nbytes / 2**20, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    mamba_times = [r["mamba_ms_per_token"] for r in rows]
    mean = statistics.mean(mamba_times)
    last = rows[-1]
    summary = {
        "benchmark": "decode_state_vs_kv_summary",
        "params": params,
        "threads": torch.get_num_threads(),
        "steps_per_context": steps,
        "context": last["context"],
        "transformer_over_mamba_ms_per_token": round(
            last["decoder_only_ms_per_token"] / last["mamba_ms_per_token"], 2
        ),
        "transformer_over_mamba_cache_memory": round(
            last["decoder_only_cache_mb"] / last["mamba_cache_mb"], 1
        ),
        "mamba_time_flat_within_20pct": all(abs(t - mean) <= 0.2 * mean for t in mamba_times),
        "mamba_max_deviation_from_mean": round(max(abs(t - mean) for t in mamba_times) / mean, 3),
        "mamba_memory_constant": len({r["mamba_cache_mb"] for r in rows}) == 1,
    }
    print(json.dumps(summary), flush=True)
    plot(rows, pathlib.Path(args.out))
    print(f"# figure: {args.out}", flush=True)


if __name__ == "__main__":
    main()
