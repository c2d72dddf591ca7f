"""F07's tanh RNN with backpropagation through time written out in NumPy (no autograd).

`bestiary.scratch.RNN` computes the same recurrence on the autograd `Tensor`; this class instead
spells out BPTT by hand, which is both faster and what F07 derives, and returns dL/dh_t for every
step so that gradient flow through time can be measured (F07, F08).

    rnn = ElmanRNN(n_in=8, n_hidden=32, n_out=4, seed=0)
    H, Z = rnn.forward(X)                      # X (B, T, 8) -> H (B, T+1, 32), logits Z (B, T, 4)
    grads, dH = rnn.backward(X, H, dZ)         # dZ = dL/dZ (B, T, 4); dH = dL/dh_t (B, T, 32)
    rnn.set_grads(grads); adam.step()          # rnn.parameters() are `Param`s for scratch optimizers

Recurrence: a_t = x_t Wxh + h_{t-1} Whh + bh, h_t = tanh(a_t), z_t = h_t Why + by, h_0 = 0.
Initialisation (F07's): Wxh ~ N(0, 1/n_in), Whh ~ N(0, scale^2/n_hidden), Why ~ N(0, 1/n_hidden),
zero biases, drawn in that order from `np.random.default_rng(seed)`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bestiary.scratch.optim import Param

__all__ = ["ElmanRNN"]

_NAMES = ("Wxh", "Whh", "bh", "Why", "by")


class ElmanRNN:
    """tanh RNN + linear read-out with hand-written forward and BPTT over float64 NumPy arrays."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, *, scale: float = 1.0, seed: Any = 0):
        for name, v in (("n_in", n_in), ("n_hidden", n_hidden), ("n_out", n_out)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        arrays = {
            "Wxh": rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
            "Whh": rng.standard_normal((n_hidden, n_hidden)) * scale / np.sqrt(n_hidden),
            "bh": np.zeros(n_hidden),
            "Why": rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
            "by": np.zeros(n_out),
        }
        self.params = {k: Param(v, k) for k, v in arrays.items()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ElmanRNN:
        """An RNN holding copies of the given weights (keys Wxh, Whh, bh, Why, by)."""
        missing = set(_NAMES) - set(arrays)
        if missing:
            raise KeyError(f"missing weights: {sorted(missing)}")
        n_in, n_hidden = np.shape(arrays["Wxh"])
        rnn = cls(n_in, n_hidden, np.shape(arrays["Why"])[1])
        rnn.params = {k: Param(arrays[k], k) for k in _NAMES}
        return rnn

    def parameters(self) -> list[Param]:
        return list(self.params.values())

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: p.data for k, p in self.params.items()}

    def forward(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """X (B, T, n_in) -> hidden states H (B, T+1, n_hidden) with H[:, 0] = 0, logits (B, T, n_out)."""
        p = self.arrays()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 3 or X.shape[-1] != p["Wxh"].shape[0]:
            raise ValueError(f"X must be (B, T, {p['Wxh'].shape[0]}), got {X.shape}")
        B, T, _ = X.shape
        H = np.zeros((B, T + 1, p["Whh"].shape[0]))
        for t in range(T):
            H[:, t + 1] = np.tanh(X[:, t] @ p["Wxh"] + H[:, t] @ p["Whh"] + p["bh"])
        return H, H[:, 1:] @ p["Why"] + p["by"]

    def backward(
        self, X: np.ndarray, H: np.ndarray, dZ: np.ndarray
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """BPTT from dZ = dL/dlogits (B, T, n_out). Returns the weight gradients and dL/dh_t (B, T, n_hidden)."""
        p = self.arrays()
        X = np.asarray(X, dtype=np.float64)
        B, T, _ = X.shape
        grads = {k: np.zeros_like(v) for k, v in p.items()}
        grads["Why"] = np.einsum("bth,bto->ho", H[:, 1:], dZ)  # summed over batch and time
        grads["by"] = dZ.sum((0, 1))
        g = np.zeros((B, T, p["Whh"].shape[0]))
        da_next = np.zeros((B, p["Whh"].shape[0]))  # dL/da_{t+1}; zero after the last step
        for t in reversed(range(T)):
            g[:, t] = dZ[:, t] @ p["Why"].T + da_next @ p["Whh"].T  # from the output + from the future
            da = g[:, t] * (1 - H[:, t + 1] ** 2)  # through tanh
            grads["Wxh"] += X[:, t].T @ da
            grads["Whh"] += H[:, t].T @ da  # H[:, t] is h_{t-1}
            grads["bh"] += da.sum(0)
            da_next = da
        return grads, g

    def set_grads(self, grads: dict[str, np.ndarray], max_norm: float | None = None) -> float:
        """Store `grads` in the parameters (clipped to global norm `max_norm` if given); returns the norm."""
        norm = float(np.sqrt(sum((g**2).sum() for g in grads.values())))
        factor = 1.0 if max_norm is None else min(1.0, max_norm / (norm + 1e-12))
        for k, prm in self.params.items():
            prm.grad = grads[k] * factor
        return norm

    def __repr__(self) -> str:
        n_in, n_hidden = self.params["Wxh"].data.shape
        return f"ElmanRNN({n_in} -> {n_hidden} -> {self.params['Why'].data.shape[1]})"
