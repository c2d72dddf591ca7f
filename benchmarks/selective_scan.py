"""Mamba's selective scan on CPU: our parallel forms vs our sequential loop vs transformers.

What is measured: the forward pass (no gradients, float32, eval) of ONE Mamba-1 mixer
(`bestiary.layers.mamba.MambaMixer`: in_proj, causal conv, x_proj/dt_proj, the selective scan,
gate, out_proj) at batch 4, d_model 256 (d_inner 512, N = 16), for T = 256, 1024, 4096, with the
recurrence computed by each form of `layers/scan.py`:

    sequential      the loop, h_t = a_t h_{t-1} + b_t, T dependent steps
    cumsum          the chunked closed form (cumprod + cumsum), chunk 64 shortened by `safe_chunk`
                    so the decay within a chunk cannot underflow (to 27 at these initial weights)
    hillis_steele   log2(T) rounds of pairwise composition, O(T log T) work

and transformers' `MambaMixer` (its pure-PyTorch path, the one that runs without mamba-ssm: it
materialises exp(dt A) and dt B x and loops over time) with the same weights copied in; its
output must equal ours. Every form computes every state h_t (B, T, 512, 16) in full: 134M floats
(537 MB) at T = 4096, so the cost is memory traffic plus, for the loop, T Python steps.

Each measurement is the median of `--repeats` runs, the forms interleaved within each round (the
machine may be shared). Ratios: time(sequential) / time(fastest parallel form) (target >= 5 at
T = 4096) and time(transformers) / time(ours, fastest form) (target >= 1.0).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/selective_scan.py [--quick] [--repeats 3]

A script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from bestiary.layers.mamba import SCANS, MambaMixer

BATCH, D_MODEL, D_STATE = 4, 256, 16


def reference_mixer(ours: MambaMixer):
    """transformers' MambaMixer with our weights (None if transformers is missing)."""
    try:
        from transformers import MambaConfig
        from transformers.models.mamba.modeling_mamba import MambaMixer as HFMambaMixer
    except ImportError:
        return None
    config = MambaConfig(
        hidden_size=D_MODEL, state_size=D_STATE, expand=2, conv_kernel=4, num_hidden_layers=1
    )
    reference = HFMambaMixer(config, layer_idx=0).eval()
    state = ours.state_dict()
    reference.load_state_dict({name: state[name] for name in reference.state_dict()})
    return reference


def timed(module, x) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = module(x)
    return out, time.perf_counter() - start


def run(lengths: list[int], repeats: int) -> None:
    torch.manual_seed(0)
    mixers = {scan: MambaMixer(D_MODEL, d_state=D_STATE, scan=scan).eval() for scan in SCANS}
    for mixer in mixers.values():  # one set of weights for every form
        mixer.load_state_dict(mixers["sequential"].state_dict())
    reference = reference_mixer(mixers["sequential"])
    machine = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
    for T in lengths:
        x = torch.randn(BATCH, T, D_MODEL)
        modules = dict(mixers)
        if reference is not None:
            modules["transformers"] = reference
        times: dict[str, list[float]] = {name: [] for name in modules}
        with torch.no_grad():
            expected = mixers["sequential"](x)  # warm-up and the reference output
            for _ in range(repeats):
                for name, module in modules.items():
                    out, seconds = timed(module, x)
                    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-3)
                    times[name].append(seconds)
        median = {name: statistics.median(ts) for name, ts in times.items()}
        parallel = {name: median[name] for name in ("cumsum", "hillis_steele")}
        fastest = min(parallel, key=parallel.get)
        row = {
            "benchmark": "selective_scan",
            "T": T,
            "batch": BATCH,
            "d_inner": 2 * D_MODEL,
            "d_state": D_STATE,
            "seconds": {name: round(s, 4) for name, s in median.items()},
            "fastest_parallel": fastest,
            "sequential_over_fastest_parallel": round(median["sequential"] / median[fastest], 2),
            "target_vs_sequential": 5.0,
            "machine": machine,
            "repeats": repeats,
        }
        if reference is not None:
            best_ours = min(median[name] for name in SCANS)
            row["transformers_over_fastest_parallel"] = round(median["transformers"] / median[fastest], 2)
            row["transformers_over_our_fastest_form"] = round(median["transformers"] / best_ours, 2)
            row["target_vs_transformers"] = 1.0
        print(json.dumps(row), flush=True)
    print_table_footer()


def print_table_footer() -> None:
    print(
        "# sequential_over_fastest_parallel > 1 means the parallel form is faster than the loop;"
        " transformers_over_* > 1 means ours is faster than transformers' pure-PyTorch path.",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="T = 64 and 256, one repeat (a smoke run)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        run([64, 256], 1)
    else:
        run([256, 1024, 4096], args.repeats)


if __name__ == "__main__":
    main()
