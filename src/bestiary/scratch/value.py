"""A scalar reverse-mode autograd engine, in the style of Karpathy's *micrograd* (2020).

Every `Value` wraps one Python float and remembers *how* it was computed: its parents
(`_prev`) and a closure (`_backward`) that pushes the gradient of the final output from
this node to its parents using the chain rule. `backward()` sorts the graph topologically
and runs those closures from the output back to the leaves.

    a = Value(2.0); b = Value(-3.0)
    y = (a * b + a.exp()).tanh()
    y.backward()            # fills a.grad and b.grad with dy/da, dy/db

Gradients ACCUMULATE (`+=`), exactly like torch: within one pass this is what makes a node
used twice (``a * a``) receive both contributions; across passes, calling `backward()` twice
without resetting the leaves' `.grad = 0.0` adds the two gradients — which is why training
loops zero gradients before each backward pass. (Intermediate nodes keep the gradient of the
latest pass only, so calling `backward()` twice on the same graph doubles the leaves'
gradients, exactly as torch does with ``retain_graph=True``.)

Reference: A. Karpathy, "micrograd" (github.com/karpathy/micrograd, 2020); the chain rule
in reverse mode follows Linnainmaa (1970) / Rumelhart, Hinton & Williams, "Learning
representations by back-propagating errors" (Nature, 1986).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

Number = int | float


class Value:
    """One scalar node of a computation graph, with its gradient.

    Attributes:
        data: the float value computed in the forward pass.
        grad: d(output)/d(self), filled by `output.backward()`; starts at 0.0.
    """

    __slots__ = ("data", "grad", "_backward", "_prev", "_op", "label")

    def __init__(self, data: Number, _children: Iterable[Value] = (), _op: str = "", label: str = ""):
        if isinstance(data, Value):
            raise TypeError("Value(data) expects a number, got a Value; use the Value itself")
        if not isinstance(data, int | float):
            # numpy scalars are fine, anything else (lists, arrays) is a mistake.
            try:
                data = float(data)
            except (TypeError, ValueError):
                raise TypeError(f"Value(data) expects a real number, got {type(data).__name__}") from None
        self.data = float(data)
        self.grad = 0.0
        self._backward: Callable[[], None] = lambda: None
        self._prev = tuple(_children)
        self._op = _op
        self.label = label

    # -- helpers -------------------------------------------------------------------------------
    @staticmethod
    def _lift(other: Value | Number) -> Value:
        """Wrap a plain number so that `Value + 3` works; constants get a (never read) grad too."""
        if isinstance(other, Value):
            return other
        if isinstance(other, int | float):
            return Value(other)
        raise TypeError(f"unsupported operand: Value and {type(other).__name__} (expected a number or Value)")

    # -- arithmetic ----------------------------------------------------------------------------
    def __add__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward() -> None:
            # d(a+b)/da = d(a+b)/db = 1
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other: Value | Number) -> Value:
        other = self._lift(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward() -> None:
            # d(ab)/da = b, d(ab)/db = a
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent: Number) -> Value:
        if isinstance(exponent, Value):
            # a ** b with b a Value == exp(b * log a); supported for a > 0.
            return (exponent * self.log()).exp()
        if not isinstance(exponent, int | float):
            raise TypeError(f"Value ** expects a number exponent, got {type(exponent).__name__}")
        out = Value(self.data**exponent, (self,), f"**{exponent}")

        def _backward() -> None:
            # d(a^n)/da = n a^(n-1)
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def __rpow__(self, base: Number) -> Value:
        # c ** x = exp(x log c), defined for c > 0
        if base <= 0:
            raise ValueError(f"number ** Value needs a positive base, got {base}")
        return (self * math.log(base)).exp()

    def __neg__(self) -> Value:
        return self * -1

    def __sub__(self, other: Value | Number) -> Value:
        return self + (-self._lift(other))

    def __truediv__(self, other: Value | Number) -> Value:
        return self * self._lift(other) ** -1

    def __radd__(self, other: Number) -> Value:
        return self + other

    def __rmul__(self, other: Number) -> Value:
        return self * other

    def __rsub__(self, other: Number) -> Value:
        return self._lift(other) - self

    def __rtruediv__(self, other: Number) -> Value:
        return self._lift(other) * self**-1

    # -- elementwise functions ---------------------------------------------------------------------
    def exp(self) -> Value:
        e = math.exp(self.data)
        out = Value(e, (self,), "exp")

        def _backward() -> None:
            self.grad += e * out.grad  # d(e^a)/da = e^a

        out._backward = _backward
        return out

    def log(self) -> Value:
        if self.data <= 0:
            raise ValueError(f"log of a non-positive number: {self.data}")
        out = Value(math.log(self.data), (self,), "log")

        def _backward() -> None:
            self.grad += out.grad / self.data  # d(log a)/da = 1/a

        out._backward = _backward
        return out

    def tanh(self) -> Value:
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward() -> None:
            self.grad += (1.0 - t * t) * out.grad  # d(tanh a)/da = 1 - tanh^2 a

        out._backward = _backward
        return out

    def relu(self) -> Value:
        out = Value(self.data if self.data > 0 else 0.0, (self,), "relu")

        def _backward() -> None:
            # Subgradient 0 at exactly 0, the same convention as torch.
            self.grad += (1.0 if self.data > 0 else 0.0) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Value:
        # Two branches so that exp never overflows for large |x|.
        x = self.data
        s = 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))
        out = Value(s, (self,), "sigmoid")

        def _backward() -> None:
            self.grad += s * (1.0 - s) * out.grad  # d(sigma)/da = sigma (1 - sigma)

        out._backward = _backward
        return out

    # -- backpropagation --------------------------------------------------------------------------
    def backward(self, grad: float = 1.0) -> None:
        """Fill `.grad` of every node this one depends on with d(self)/d(node).

        The seed `grad` is d(loss)/d(self); 1.0 when `self` is the loss. Gradients are added to
        whatever is already in `.grad` (accumulation, like torch) — zero them between steps.
        """
        topo: list[Value] = []
        visited: set[int] = set()
        # Iterative depth-first search: a recursive one hits Python's recursion limit on
        # long chains (e.g. an RNN unrolled over many steps).
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, children_done = stack.pop()
            if children_done:
                topo.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            for child in node._prev:
                if id(child) not in visited:
                    stack.append((child, False))
        # Intermediate nodes hold the gradient of THIS backward pass only (reset here); leaves
        # (inputs and parameters, which have no parents) accumulate across calls, like torch.
        # Without the reset, a second backward through the same graph would double-count.
        for node in topo:
            if node._prev:
                node.grad = 0.0
        self.grad += float(grad)
        for node in reversed(topo):
            node._backward()

    def __repr__(self) -> str:
        return f"Value(data={self.data:.6g}, grad={self.grad:.6g})"


__all__ = ["Value"]
