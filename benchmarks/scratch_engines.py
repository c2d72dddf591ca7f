"""How much slower are our NumPy engines than torch? Same MLP, same data, same init, same steps.

Trains a 2-16-16-1 tanh MLP on "two moons" (full batch, MSE on +/-1 targets, plain SGD, float64)
three times: with the scalar `Value` engine, with the vectorised `Tensor` engine, and with torch on
CPU. All three start from identical weights, so their losses must agree to float precision — the
script checks that before reporting any timing. Prints one JSON line per engine, then one with the
ratios and machine info.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scratch_engines.py [--n 100] [--epochs 100] [--value-epochs 4]

This is a script, not a test: timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import time

import numpy as np

from bestiary.scratch import MLP, Tensor, Value, mse_loss
from bestiary.scratch.micrograd_nn import MLP as MicroMLP


def make_moons(n: int, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles (as sklearn.datasets.make_moons), labels in {-1, +1}."""
    rng = np.random.default_rng(seed)
    n_top = n // 2
    angles_top = np.linspace(0, np.pi, n_top)
    angles_bottom = np.linspace(0, np.pi, n - n_top)
    top = np.stack([np.cos(angles_top), np.sin(angles_top)], axis=1)
    bottom = np.stack([1 - np.cos(angles_bottom), 0.5 - np.sin(angles_bottom)], axis=1)
    x = np.concatenate([top, bottom]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.ones(n_top), -np.ones(n - n_top)])
    return x, y


def weights_of(micro: MicroMLP) -> list[tuple[np.ndarray, np.ndarray]]:
    """(W (out, in), b (out,)) per layer of the micrograd MLP, to give every engine the same init."""
    return [
        (
            np.array([[w.data for w in n.w] for n in layer.neurons]),
            np.array([n.b.data for n in layer.neurons]),
        )
        for layer in micro.layers
    ]


def run_value(
    model: MicroMLP, x: np.ndarray, y: np.ndarray, epochs: int, lr: float
) -> tuple[list[float], list[float]]:
    times, losses = [], []
    xs = [[float(a) for a in row] for row in x]
    for _ in range(epochs):
        start = time.perf_counter()
        preds = [model(row) for row in xs]
        loss_v = sum(((p - t) ** 2 for p, t in zip(preds, y.tolist())), Value(0.0)) * (1.0 / len(xs))
        model.zero_grad()
        loss_v.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        times.append(time.perf_counter() - start)
        losses.append(loss_v.data)
    return times, losses


def run_tensor(init, x: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> tuple[list[float], list[float]]:
    model = MLP([2, 16, 16, 1], activation="tanh")
    for layer, (w, b) in zip(model.layers, init):
        layer.weight.data, layer.bias.data = w.copy(), b.copy()
    xt, yt = Tensor(x), Tensor(y[:, None])
    times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        loss_t = mse_loss(model(xt), yt)
        model.zero_grad()
        loss_t.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        times.append(time.perf_counter() - start)
        losses.append(loss_t.item())
    return times, losses


def run_torch(init, x: np.ndarray, y: np.ndarray, epochs: int, lr: float) -> tuple[list[float], list[float]]:
    import torch

    layers = [
        torch.nn.Linear(2, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 16),
        torch.nn.Tanh(),
        torch.nn.Linear(16, 1),
    ]
    model = torch.nn.Sequential(*layers).double()
    with torch.no_grad():
        for lin, (w, b) in zip([m for m in layers if isinstance(m, torch.nn.Linear)], init):
            lin.weight.copy_(torch.from_numpy(w))
            lin.bias.copy_(torch.from_numpy(b))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y[:, None])
    times, losses = [], []
    for _ in range(epochs):
        start = time.perf_counter()
        loss_t = torch.nn.functional.mse_loss(model(xt), yt)
        model.zero_grad()
        loss_t.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
        times.append(time.perf_counter() - start)
        losses.append(loss_t.item())
    return times, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of moons points (full batch)")
    parser.add_argument(
        "--epochs", type=int, default=100, help="epochs (full-batch SGD steps) for Tensor/torch"
    )
    parser.add_argument("--value-epochs", type=int, default=4, help="epochs for the (slow) Value engine")
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()

    x, y = make_moons(args.n)
    init = weights_of(MicroMLP(2, [16, 16, 1], activation="tanh", seed=0))

    def value_run(gc_off: bool) -> tuple[list[float], list[float]]:
        # Python's cyclic garbage collector repeatedly scans the ~10^5 live graph nodes; a
        # learner's run has it on, the "gc_off" run shows how much of the time that costs.
        micro = MicroMLP(2, [16, 16, 1], activation="tanh", seed=0)  # same seed -> same init
        was_enabled = gc.isenabled()
        if gc_off:
            gc.disable()
        try:
            return run_value(micro, x, y, args.value_epochs, args.lr)
        finally:
            if was_enabled:
                gc.enable()

    results = {}
    for name, fn in (
        ("value", lambda: value_run(gc_off=False)),
        ("value_gc_off", lambda: value_run(gc_off=True)),
        ("tensor", lambda: run_tensor(init, x, y, args.epochs, args.lr)),
        ("torch", lambda: run_torch(init, x, y, args.epochs, args.lr)),
    ):
        times, losses = fn()
        results[name] = {"per_epoch_s": statistics.median(times), "losses": losses}
        line = {
            "engine": name,
            "n": args.n,
            "epochs": len(times),
            "median_epoch_s": statistics.median(times),
            "mean_epoch_s": statistics.fmean(times),
            "final_loss": losses[-1],
        }
        print(json.dumps(line), flush=True)

    # Same init, same data, same steps: every engine must have computed the same loss curve.
    for name in ("value", "value_gc_off", "tensor"):
        k = min(len(results[name]["losses"]), len(results["torch"]["losses"]))
        diff = float(np.max(np.abs(np.subtract(results[name]["losses"][:k], results["torch"]["losses"][:k]))))
        if diff > 1e-9:
            raise SystemExit(f"{name} and torch disagree on the loss curve by {diff}")

    import torch

    torch_s = results["torch"]["per_epoch_s"]
    summary = {
        "ratio_value_over_torch": results["value"]["per_epoch_s"] / torch_s,
        "ratio_value_gc_off_over_torch": results["value_gc_off"]["per_epoch_s"] / torch_s,
        "ratio_tensor_over_torch": results["tensor"]["per_epoch_s"] / torch_s,
        "loss_curves_agree_within": 1e-9,
        "note": "median seconds per full-batch epoch, float64 everywhere; noisy on a shared machine",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
