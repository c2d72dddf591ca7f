"""Neurons, layers and an MLP built from scalar `Value`s (micrograd style, Karpathy 2020).

This is the slowest possible neural network — one Python object per number — and that is the
point: every multiply-add of a forward pass is visible, and `loss.backward()` walks the
whole graph scalar by scalar. `bestiary.scratch.tensor` does the same maths on whole arrays.

    model = MLP(2, [16, 16, 1])                  # 2 inputs -> 16 -> 16 -> 1 output
    out = model([Value(0.5), Value(-1.0)])        # a single Value (one output)
    loss = (out - 1.0) ** 2
    model.zero_grad(); loss.backward()
    for p in model.parameters(): p.data -= 0.1 * p.grad

Initialisation: weights ~ U(-1/sqrt(n_in), 1/sqrt(n_in)) and biases likewise, the same rule as
`torch.nn.Linear`, so the two can be compared with copied weights.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from bestiary.scratch.value import Number, Value

_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


class MicroModule:
    """Base class: anything with parameters that can have their gradients reset."""

    def parameters(self) -> list[Value]:
        return []

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = 0.0


class Neuron(MicroModule):
    """out = act(w . x + b) for one output."""

    def __init__(self, n_in: int, activation: str = "tanh", rng: random.Random | None = None):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        if n_in < 1:
            raise ValueError(f"n_in must be >= 1, got {n_in}")
        rng = rng or random.Random()
        bound = 1.0 / n_in**0.5
        self.w = [Value(rng.uniform(-bound, bound)) for _ in range(n_in)]
        self.b = Value(rng.uniform(-bound, bound))
        self.activation = activation

    def __call__(self, x: Sequence[Value | Number]) -> Value:
        if len(x) != len(self.w):
            raise ValueError(f"Neuron expects {len(self.w)} inputs, got {len(x)}")
        # sum(..., start=b) builds a chain of additions: w1*x1 + w2*x2 + ... + b
        z = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)
        if self.activation == "linear":
            return z
        return getattr(z, self.activation)()

    def parameters(self) -> list[Value]:
        return [*self.w, self.b]

    def __repr__(self) -> str:
        return f"Neuron({len(self.w)}, {self.activation})"


class Layer(MicroModule):
    """`n_out` independent neurons that all read the same inputs."""

    def __init__(self, n_in: int, n_out: int, activation: str = "tanh", rng: random.Random | None = None):
        rng = rng or random.Random()
        self.neurons = [Neuron(n_in, activation, rng) for _ in range(n_out)]

    def __call__(self, x: Sequence[Value | Number]) -> list[Value]:
        return [n(x) for n in self.neurons]

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer([{', '.join(map(repr, self.neurons[:1]))}] x {len(self.neurons)})"


class MLP(MicroModule):
    """A stack of `Layer`s; hidden layers use `activation`, the last one is linear.

    Args:
        n_in: number of inputs.
        sizes: output size of each layer, e.g. [16, 16, 1].
        activation: hidden non-linearity ("tanh", "relu" or "sigmoid").
        seed: seed for the initial weights (a private `random.Random`, global state untouched).
    """

    def __init__(self, n_in: int, sizes: Sequence[int], activation: str = "tanh", seed: int | None = None):
        if not sizes:
            raise ValueError("MLP needs at least one layer size")
        rng = random.Random(seed)
        dims = [n_in, *sizes]
        self.layers = [
            Layer(dims[i], dims[i + 1], activation if i < len(sizes) - 1 else "linear", rng)
            for i in range(len(sizes))
        ]

    def __call__(self, x: Sequence[Value | Number]) -> Value | list[Value]:
        out: list[Value] = list(x)  # type: ignore[arg-type]
        for layer in self.layers:
            out = layer(out)
        # A single output is returned as a Value (convenient for losses), several as a list.
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP({' -> '.join(str(len(layer.neurons)) for layer in self.layers)})"


__all__ = ["MLP", "Layer", "MicroModule", "Neuron"]
