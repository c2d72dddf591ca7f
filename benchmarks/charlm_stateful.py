"""Character-level Shakespeare on CPU at equal wall time: Mamba, RWKV-7 and minGRU vs our transformer recipe.

What is measured: the validation loss (nats per character) each model reaches after the same number
of seconds of training on the same data, on the same machine, at about the same parameter count.
There is no target: the point is an honest picture of where the stateful (recurrent / state-space)
models stand against attention at this small, CPU-bound scale.

How (the setup of benchmarks/charlm_cpu.py, imported from it, not copied):
- data: `bestiary.data.tiny_shakespeare()` (~1.1M characters), character vocabulary, 90/10 split;
- the transformer is `charlm_cpu.OUR_RECIPE` built by `charlm_cpu.our_run` (decoder_only, d_model 96,
  2 layers, RoPE, RMSNorm, SwiGLU); the other three are built from the registry (`mamba` with the
  chunked cumsum scan, `rwkv` version 7 in its chunkwise form, `min_gru` with its parallel log-space
  scan), 2 layers each, d_model chosen so that the parameter count is the closest to the recipe's;
- every model gets the recipe's training loop unchanged: `bestiary.train.adamw` (lr 5e-3, weight
  decay 0.1 on matrices, betas (0.9, 0.95)), gradient clipping at 1, batches of 16 windows of 64
  characters, warm-up + cosine over the *time budget* (`our_run`'s schedule; its minimum comes when
  the budget ends). The learning rate was tuned for the transformer only: the others may do better
  with their own (use --lr-scale to try);
- the runs are *interleaved* step by step (`charlm_cpu.race`), each charged only for its own steps,
  so all see the same machine load; tokens/s is training throughput (forward + backward + update);
- the score is `charlm_cpu.val_loss`: the mean next-character loss on 400 fixed validation windows.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/charlm_stateful.py --budget 60 --threads 2
    .venv/bin/python benchmarks/charlm_stateful.py --quick      # a 5-second smoke run per model

Prints a table and writes build/benchmarks/charlm_stateful.json. A script, not a test: timings
depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import charlm_cpu  # noqa: E402  (the setup we reuse: Run, race, our_run, val_loss, OUR_RECIPE)

import bestiary  # noqa: E402
from bestiary.data import char_vocab, tiny_shakespeare, train_val_split  # noqa: E402
from bestiary.train import adamw  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_LAYERS = 2


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# name -> (registry name, fixed options, d_model candidates, options that scale with d_model)
STATEFUL = {
    "mamba": ("mamba", dict(n_layers=N_LAYERS, d_state=16, expand=2, scan="cumsum"), range(64, 257, 8),
              lambda d: {}),
    "rwkv": ("rwkv", dict(n_layers=N_LAYERS, version=7, head_dim=32, mode="chunkwise"), range(64, 257, 32),
             lambda d: {"d_ff": 4 * d}),
    "min_gru": ("min_gru", dict(n_layers=N_LAYERS, mlp="gelu", expansion=1.5), range(64, 257, 8),
                lambda d: {"d_ff": 4 * d}),
}  # fmt: skip


def matched_config(name: str, vocab: int, target: int) -> dict:
    """The stateful model's options with the d_model whose parameter count is closest to `target`."""
    registry_name, fixed, widths, scaled = STATEFUL[name]
    best = None
    for d in widths:
        config = {**fixed, "d_model": d, **scaled(d)}
        with torch.device("meta"):
            count = n_params(bestiary.build(registry_name, vocab_size=vocab, **config))
        if best is None or abs(count - target) < abs(best[0] - target):
            best = (count, config)
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budget", type=float, default=60.0, help="wall-clock seconds of training per model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: OMP_NUM_THREADS)")
    parser.add_argument("--lr", type=float, default=5e-3, help="peak learning rate (the recipe's)")
    parser.add_argument(
        "--lr-scale", type=float, default=1.0, help="multiply the stateful models' lr by this"
    )
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="5 s per model, a smoke test of the script")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "benchmarks" / "charlm_stateful.json")
    args = parser.parse_args()
    if args.quick:
        args.budget = 5.0
    if args.threads:
        torch.set_num_threads(args.threads)

    text = tiny_shakespeare()
    chars = char_vocab(text)  # the sorted set of characters: the same ids as charlm_cpu's
    train, val = train_val_split(chars.encode(text).to(torch.uint8))
    vocab = len(chars)
    load_before = os.getloadavg()

    def run_for(lr: float):
        """A run with the recipe's model, optimizer and time-based schedule (charlm_cpu.our_run)."""
        return charlm_cpu.our_run(
            train, vocab, config=charlm_cpu.OUR_RECIPE, lr=lr, batch=args.batch, block=args.block,
            budget_s=args.budget, warmup_s=0.05 * args.budget,
        )  # fmt: skip

    runs = {"decoder_only": run_for(args.lr)}
    configs = {"decoder_only": dict(charlm_cpu.OUR_RECIPE)}
    target = n_params(runs["decoder_only"].model)
    for name, (registry_name, *_rest) in STATEFUL.items():
        configs[name] = matched_config(name, vocab, target)
        run = run_for(args.lr * args.lr_scale)  # our_run's loop and schedule, with the model swapped
        torch.manual_seed(0)
        run.model = bestiary.build(registry_name, vocab_size=vocab, **configs[name])
        run.opt = adamw(run.model, lr=args.lr * args.lr_scale, weight_decay=0.1, betas=(0.9, 0.95))
        runs[name] = run

    start = time.perf_counter()
    charlm_cpu.race(list(runs.values()), budget_s=args.budget)
    wall = time.perf_counter() - start
    rows = []
    for name, run in runs.items():
        rows.append(
            {
                "model": name,
                "params": n_params(run.model),
                "steps": run.iters,
                "train_s": round(run.seconds, 1),
                "tokens_per_s": round(run.tokens_per_s),
                "val_loss": round(charlm_cpu.val_loss(run.model, val), 4),
                "config": configs[name],
            }
        )

    print(f"\nchar-LM, {args.budget:.0f} s of training per model, interleaved; {vocab} symbols")
    print(f"{'model':<14}{'params':>9}{'steps':>8}{'tokens/s':>10}{'val loss':>10}")
    for r in rows:
        print(
            f"{r['model']:<14}{r['params']:>9,}{r['steps']:>8}{r['tokens_per_s']:>10,}{r['val_loss']:>10.4f}"
        )
    result = {
        "benchmark": "charlm_stateful",
        "budget_s": args.budget,
        "quick": args.quick,
        "lr": args.lr,
        "lr_scale_stateful": args.lr_scale,
        "batch": args.batch,
        "block": args.block,
        "race_wall_s": round(wall, 1),
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")


if __name__ == "__main__":
    main()
