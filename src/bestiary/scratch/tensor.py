"""A vectorised reverse-mode autograd engine over float64 NumPy arrays.

`Value` (see `value.py`) differentiates one scalar at a time; `Tensor` does the same bookkeeping
for whole arrays, so one graph node stands for a full matrix multiply instead of millions of
scalar multiplies. The rules are the ones of matrix calculus (e.g. for ``C = A @ B``:
``dA = dC @ B.T`` and ``dB = A.T @ dC``), written once per operation in a small closure.

    x = Tensor(np.random.randn(4, 3))
    W = Tensor(np.random.randn(3, 2), requires_grad=True)
    loss = (x @ W).tanh().sum()
    loss.backward()          # W.grad has shape (3, 2)

Broadcasting. NumPy lets ``(3, 1, 4) + (2, 4)`` produce a ``(3, 2, 4)`` result. In the backward
pass the gradient arriving at each operand has the *result's* shape, so it must be summed back
over every axis that broadcasting created or stretched (`unbroadcast`). The engine does this for
every operation, so an operation's backward rule never has to think about it.

Semantics, chosen to match torch:
- Only tensors with ``requires_grad=True`` (and results computed from them) are tracked.
- ``backward()`` needs a scalar output, or an explicit seed gradient of the output's shape.
- Leaf tensors (created by you, ``requires_grad=True``) ACCUMULATE gradients across calls to
  ``backward()``: ``grad`` is added to, never overwritten. Reset with ``zero_grad()`` (sets
  ``grad = None``, torch's default ``set_to_none=True``). Intermediate results keep the gradient
  of the latest backward pass in ``.grad`` for inspection (torch would need ``retain_grad()``).
- ``with no_grad():`` disables graph building (evaluation, optimizer updates).
- Ties in ``max``: the gradient is split evenly between the tied maxima, as ``torch.amax`` does.
- ``gelu(approximate="none")`` is the exact ``x * Phi(x)`` with ``erf``; ``approximate="tanh"``
  is the tanh approximation of Hendrycks & Gimpel — the same two options as ``torch.nn.GELU``.

References: Linnainmaa (1970), reverse-mode automatic differentiation; Baydin et al.,
"Automatic differentiation in machine learning: a survey" (2018, arXiv:1502.05767);
Hendrycks & Gimpel, "Gaussian Error Linear Units (GELUs)" (2016, arXiv:1606.08415).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

ArrayLike = Any  # anything np.asarray accepts
# A backward rule maps the output's gradient to one gradient per parent (None = no gradient).
BackwardFn = Callable[[np.ndarray], Sequence[np.ndarray | None]]

_GRAD_ENABLED = True


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Context manager (also usable as a decorator): operations inside build no graph."""
    global _GRAD_ENABLED
    previous = _GRAD_ENABLED
    _GRAD_ENABLED = False
    try:
        yield
    finally:
        _GRAD_ENABLED = previous


def is_grad_enabled() -> bool:
    return _GRAD_ENABLED


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` back down to `shape`, undoing NumPy broadcasting.

    Broadcasting (1) prepends axes and (2) stretches size-1 axes. Every copy of an input
    element contributed to the output, so its gradient is the SUM over the copies.
    """
    if grad.shape == shape:
        return grad
    # (1) axes that were prepended: sum them away.
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    # (2) axes that were size 1 in the input but larger in the output: sum, keeping the axis.
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad.reshape(shape)


def _broadcast_shape(op: str, a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(a, b)
    except ValueError:
        raise ValueError(f"{op}: shapes {a} and {b} cannot be broadcast together") from None


def _as_array(data: ArrayLike) -> np.ndarray:
    if isinstance(data, Tensor):
        return data.data
    arr = np.asarray(data)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"Tensor data must be numeric, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


_erf = np.vectorize(math.erf, otypes=[np.float64])  # exact erf; NumPy has no ufunc for it


class Tensor:
    """An n-dimensional float64 array that records the operations applied to it.

    Args:
        data: anything `np.asarray` accepts; stored as float64.
        requires_grad: track operations on this tensor and fill `.grad` in `backward()`.
    """

    # Make `ndarray + Tensor` call Tensor.__radd__ instead of NumPy broadcasting over objects.
    __array_ufunc__ = None

    def __init__(
        self, data: ArrayLike, requires_grad: bool = False, _prev: tuple[Tensor, ...] = (), _op: str = ""
    ):
        self.data: np.ndarray = _as_array(data)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._prev = _prev
        self._op = _op
        self._backward: BackwardFn | None = None

    # -- basic properties ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    @property
    def is_leaf(self) -> bool:
        return not self._prev

    def __len__(self) -> int:
        return len(self.data)

    def item(self) -> float:
        return float(self.data.item())

    def numpy(self) -> np.ndarray:
        return self.data

    def detach(self) -> Tensor:
        """Same data (shared, not copied), cut from the graph."""
        return Tensor(self.data, requires_grad=False)

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        grad = ", requires_grad=True" if self.requires_grad else ""
        return f"Tensor({np.array2string(self.data, precision=4, threshold=20)}{grad})"

    # -- graph building --------------------------------------------------------------------------
    @staticmethod
    def _lift(x: Tensor | ArrayLike) -> Tensor:
        return x if isinstance(x, Tensor) else Tensor(x)

    @staticmethod
    def _make(data: np.ndarray, parents: tuple[Tensor, ...], op: str, backward: BackwardFn) -> Tensor:
        """Create a result node; attach its backward rule only if some parent needs gradients."""
        track = _GRAD_ENABLED and any(p.requires_grad for p in parents)
        out = Tensor(data, requires_grad=track, _prev=parents if track else (), _op=op)
        if track:
            out._backward = backward
        return out

    # -- backpropagation --------------------------------------------------------------------------
    def _topological_order(self) -> list[Tensor]:
        """Nodes that need gradients, each after all the nodes it was computed from."""
        order: list[Tensor] = []
        visited: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]  # iterative: no recursion limit
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append((node, True))
            stack.extend((p, False) for p in node._prev if p.requires_grad and id(p) not in visited)
        return order

    def backward(self, grad: ArrayLike | None = None) -> None:
        """Compute d(self)/d(leaf) for every leaf with ``requires_grad`` and ADD it to ``leaf.grad``.

        Args:
            grad: the seed d(loss)/d(self), same shape as `self`; may be omitted only for a
                scalar (size-1) output, where it defaults to 1.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward() on a Tensor that does not require grad: no input had requires_grad=True "
                "(or it was computed inside no_grad())"
            )
        if grad is None:
            if self.size != 1:
                raise RuntimeError(
                    f"backward() without a seed gradient needs a scalar output, got shape {self.shape}; "
                    "reduce it first (e.g. .sum() or .mean()) or pass grad=<array of that shape>"
                )
            seed = np.ones_like(self.data)
        else:
            seed = _as_array(grad)
            if seed.shape != self.shape:
                raise ValueError(f"backward(grad): grad has shape {seed.shape}, expected {self.shape}")
        grads: dict[int, np.ndarray] = {id(self): seed}
        for node in reversed(self._topological_order()):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            if node.is_leaf:
                # Leaves accumulate across backward calls (torch semantics); copy so that the
                # caller's arrays are never aliased.
                node.grad = g.copy() if node.grad is None else node.grad + g
                continue
            node.grad = g  # kept for inspection; replaced on the next backward pass
            assert node._backward is not None
            for parent, pg in zip(node._prev, node._backward(g)):
                if pg is None or not parent.requires_grad:
                    continue
                pg = unbroadcast(np.asarray(pg, dtype=np.float64), parent.shape)
                key = id(parent)
                grads[key] = pg if key not in grads else grads[key] + pg

    # -- elementwise binary operations -------------------------------------------------------------
    def _binary(self, other: Tensor | ArrayLike, op: str) -> tuple[Tensor, Tensor]:
        other = self._lift(other)
        _broadcast_shape(op, self.shape, other.shape)
        return self, other

    def __add__(self, other: Tensor | ArrayLike) -> Tensor:
        a, b = self._binary(other, "add")
        return self._make(a.data + b.data, (a, b), "add", lambda g: (g, g))

    def __sub__(self, other: Tensor | ArrayLike) -> Tensor:
        a, b = self._binary(other, "sub")
        return self._make(a.data - b.data, (a, b), "sub", lambda g: (g, -g))

    def __mul__(self, other: Tensor | ArrayLike) -> Tensor:
        a, b = self._binary(other, "mul")
        return self._make(a.data * b.data, (a, b), "mul", lambda g: (g * b.data, g * a.data))

    def __truediv__(self, other: Tensor | ArrayLike) -> Tensor:
        a, b = self._binary(other, "div")
        # d(a/b)/da = 1/b ; d(a/b)/db = -a/b^2
        return self._make(a.data / b.data, (a, b), "div", lambda g: (g / b.data, -g * a.data / b.data**2))

    def __pow__(self, exponent: Tensor | ArrayLike) -> Tensor:
        a, b = self._binary(exponent, "pow")
        out_data = a.data**b.data

        def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            ga = g * b.data * a.data ** (b.data - 1)  # d(a^b)/da = b a^(b-1)
            # d(a^b)/db = a^b log a, only defined for a > 0 (computed only if needed)
            gb = g * out_data * np.log(np.where(a.data > 0, a.data, 1.0)) if b.requires_grad else None
            return ga, gb

        return self._make(out_data, (a, b), "pow", backward)

    def __radd__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) + self

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) - self

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) * self

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) / self

    def __rpow__(self, other: ArrayLike) -> Tensor:
        return self._lift(other) ** self

    def __neg__(self) -> Tensor:
        return self._make(-self.data, (self,), "neg", lambda g: (-g,))

    def __matmul__(self, other: Tensor | ArrayLike) -> Tensor:
        return matmul(self, other)

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return matmul(self._lift(other), self)

    # -- elementwise unary functions -------------------------------------------------------------
    def exp(self) -> Tensor:
        e = np.exp(self.data)
        return self._make(e, (self,), "exp", lambda g: (g * e,))

    def log(self) -> Tensor:
        x = self.data
        return self._make(np.log(x), (self,), "log", lambda g: (g / x,))

    def sqrt(self) -> Tensor:
        return self**0.5

    def tanh(self) -> Tensor:
        t = np.tanh(self.data)
        return self._make(t, (self,), "tanh", lambda g: (g * (1.0 - t * t),))

    def sigmoid(self) -> Tensor:
        # 1/(1+e^-x) overflows in exp for very negative x; 0.5*(1+tanh(x/2)) is the same function
        # and never overflows.
        s = 0.5 * (1.0 + np.tanh(0.5 * self.data))
        return self._make(s, (self,), "sigmoid", lambda g: (g * s * (1.0 - s),))

    def relu(self) -> Tensor:
        mask = self.data > 0  # subgradient 0 at exactly 0, as torch
        return self._make(self.data * mask, (self,), "relu", lambda g: (g * mask,))

    def gelu(self, approximate: str = "none") -> Tensor:
        """GELU(x) = x Phi(x). ``approximate="none"``: exact (erf); ``"tanh"``: the tanh formula."""
        x = self.data
        if approximate == "none":
            cdf = 0.5 * (1.0 + _erf(x / math.sqrt(2.0)))
            pdf = np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)
            return self._make(x * cdf, (self,), "gelu", lambda g: (g * (cdf + x * pdf),))
        if approximate == "tanh":
            c = math.sqrt(2.0 / math.pi)
            inner = c * (x + 0.044715 * x**3)
            t = np.tanh(inner)
            out = 0.5 * x * (1.0 + t)

            def backward(g: np.ndarray) -> tuple[np.ndarray]:
                d_inner = c * (1.0 + 3 * 0.044715 * x * x)
                return (g * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * d_inner),)

            return self._make(out, (self,), "gelu_tanh", backward)
        raise ValueError(f"gelu approximate must be 'none' or 'tanh', got {approximate!r}")

    def masked_fill(self, mask: ArrayLike, value: float) -> Tensor:
        """Replace entries where `mask` is True by `value` (no gradient flows there)."""
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask, dtype=bool)
        _broadcast_shape("masked_fill", self.shape, m.shape)
        out = np.where(m, value, self.data)
        if out.shape != self.shape:
            raise ValueError(f"masked_fill: mask of shape {m.shape} would change the shape {self.shape}")
        return self._make(out, (self,), "masked_fill", lambda g: (np.where(m, 0.0, g),))

    # -- softmax family ----------------------------------------------------------------------------
    def softmax(self, axis: int = -1) -> Tensor:
        # Subtracting the max changes nothing mathematically and keeps exp from overflowing.
        z = self.data - self.data.max(axis=axis, keepdims=True)
        e = np.exp(z)
        p = e / e.sum(axis=axis, keepdims=True)
        # Jacobian-vector product of softmax: p * (g - sum(g * p))
        return self._make(p, (self,), "softmax", lambda g: (p * (g - (g * p).sum(axis=axis, keepdims=True)),))

    def log_softmax(self, axis: int = -1) -> Tensor:
        # log softmax = z - logsumexp(z), computed without ever forming exp(z) of a large z.
        z = self.data - self.data.max(axis=axis, keepdims=True)
        out = z - np.log(np.exp(z).sum(axis=axis, keepdims=True))
        p = np.exp(out)
        return self._make(out, (self,), "log_softmax", lambda g: (g - p * g.sum(axis=axis, keepdims=True),))

    # -- reductions ------------------------------------------------------------------------------
    def _expand_reduced(
        self, g: np.ndarray, axis: int | tuple[int, ...] | None, keepdims: bool
    ) -> np.ndarray:
        """Re-insert the reduced axes (as size 1) so `g` broadcasts against the input."""
        if axis is None or keepdims:
            return g if axis is not None else np.reshape(g, (1,) * self.ndim)
        axes = (axis,) if isinstance(axis, int) else axis
        axes = tuple(a % self.ndim for a in axes)
        return np.expand_dims(g, axes)

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = self.data.sum(axis=axis, keepdims=keepdims)
        return self._make(
            out,
            (self,),
            "sum",
            lambda g: (np.broadcast_to(self._expand_reduced(g, axis, keepdims), self.shape),),
        )

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = self.data.mean(axis=axis, keepdims=keepdims)
        count = self.size / out.size if out.size else 1.0  # input elements averaged into each output
        return self._make(
            out,
            (self,),
            "mean",
            lambda g: (np.broadcast_to(self._expand_reduced(g, axis, keepdims) / count, self.shape),),
        )

    def max(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        out = self.data.max(axis=axis, keepdims=keepdims)

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            full_max = self._expand_reduced(out, axis, keepdims)
            is_max = self.data == full_max
            # Split evenly between ties (torch.amax's rule).
            n_ties = is_max.sum(axis=axis, keepdims=True)
            return (is_max * self._expand_reduced(g, axis, keepdims) / n_ties,)

        return self._make(out, (self,), "max", backward)

    # -- shape manipulation -----------------------------------------------------------------------
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        if len(shape) == 1 and not isinstance(shape[0], int):
            shape = tuple(shape[0])  # type: ignore[assignment]
        try:
            out = self.data.reshape(shape)
        except ValueError:
            raise ValueError(f"reshape: cannot reshape a Tensor of shape {self.shape} into {shape}") from None
        return self._make(out, (self,), "reshape", lambda g: (g.reshape(self.shape),))

    def transpose(self, *axes: int) -> Tensor:
        """Permute axes like `np.transpose`; no axes reverses them. (Use `swapaxes` for two.)"""
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = tuple(axes[0])
        perm = tuple(axes) if axes else tuple(reversed(range(self.ndim)))
        if sorted(a % self.ndim for a in perm) != list(range(self.ndim)):
            raise ValueError(f"transpose: {perm} is not a permutation of the axes of shape {self.shape}")
        inverse = np.argsort([a % self.ndim for a in perm])
        return self._make(
            np.transpose(self.data, perm), (self,), "transpose", lambda g: (np.transpose(g, inverse),)
        )

    def swapaxes(self, a: int, b: int) -> Tensor:
        perm = list(range(self.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return self.transpose(perm)

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def __getitem__(self, index: Any) -> Tensor:
        """NumPy indexing: ints, slices, None, Ellipsis, integer arrays (gather) and boolean masks."""
        if isinstance(index, Tensor):
            index = index.data.astype(np.int64)
        elif isinstance(index, tuple):
            index = tuple(i.data.astype(np.int64) if isinstance(i, Tensor) else i for i in index)
        try:
            out = self.data[index]
        except IndexError as e:
            raise IndexError(f"index {index!r} is invalid for a Tensor of shape {self.shape}: {e}") from None

        def backward(g: np.ndarray) -> tuple[np.ndarray]:
            full = np.zeros_like(self.data)
            # add.at (not `full[index] += g`) so that an index repeated in a gather, e.g.
            # embedding rows looked up twice, receives the sum of its gradients.
            np.add.at(full, index, g)
            return (full,)

        return self._make(np.array(out, dtype=np.float64), (self,), "getitem", backward)


# -- functions of several tensors ----------------------------------------------------------------
def tensor(data: ArrayLike, requires_grad: bool = False) -> Tensor:
    """Shorthand for `Tensor(data, requires_grad)`."""
    return Tensor(data, requires_grad=requires_grad)


def matmul(a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Matrix product with `np.matmul` semantics (batched, broadcast over leading axes, 1-D allowed)."""
    a, b = Tensor._lift(a), Tensor._lift(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: scalars are not allowed, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} do not align ({k_a} != {k_b})")
    try:
        out = a.data @ b.data
    except ValueError:
        raise ValueError(
            f"matmul: batch axes of shapes {a.shape} and {b.shape} cannot be broadcast"
        ) from None

    def backward(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Promote 1-D operands to matrices so one rule covers every case:
        # a (n,) -> (1, n); b (n,) -> (n, 1); g gets the matching size-1 axes back.
        A = a.data[None, :] if a.ndim == 1 else a.data  # (..., M, K)
        B = b.data[:, None] if b.ndim == 1 else b.data  # (..., K, N)
        G = g
        if b.ndim == 1:
            G = np.expand_dims(G, -1)  # (..., M) -> (..., M, 1)
        if a.ndim == 1:
            G = np.expand_dims(G, -2)  # (..., N) -> (..., 1, N)
        gA = G @ np.swapaxes(B, -1, -2)  # dA = dC B^T
        gB = np.swapaxes(A, -1, -2) @ G  # dB = A^T dC
        # Batch axes are summed by the engine's unbroadcast; a 1-D operand's promoted axis and
        # every batch axis are summed here, since a vector has no batch axes to keep.
        if a.ndim == 1:
            gA = gA.reshape(-1, a.shape[0]).sum(axis=0)  # (..., 1, K) -> (K,)
        if b.ndim == 1:
            gB = gB.sum(axis=tuple(range(gB.ndim - 2))).reshape(b.shape)  # (..., K, 1) -> (K,)
        return gA, gB

    return Tensor._make(out, (a, b), "matmul", backward)


def concatenate(tensors: Sequence[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; the gradient is split back into the pieces."""
    ts = [Tensor._lift(t) for t in tensors]
    if not ts:
        raise ValueError("concatenate: need at least one tensor")
    try:
        out = np.concatenate([t.data for t in ts], axis=axis)
    except ValueError:
        raise ValueError(
            f"concatenate: shapes {[t.shape for t in ts]} do not match along axis {axis}"
        ) from None
    bounds = np.cumsum([t.shape[axis] for t in ts])[:-1]
    return Tensor._make(out, tuple(ts), "concatenate", lambda g: tuple(np.split(g, bounds, axis=axis)))


def stack(tensors: Sequence[Tensor | ArrayLike], axis: int = 0) -> Tensor:
    """Join same-shape tensors along a new axis."""
    ts = [Tensor._lift(t) for t in tensors]
    if not ts:
        raise ValueError("stack: need at least one tensor")
    shapes = {t.shape for t in ts}
    if len(shapes) != 1:
        raise ValueError(f"stack: all tensors must have the same shape, got {[t.shape for t in ts]}")
    out = np.stack([t.data for t in ts], axis=axis)
    return Tensor._make(
        out, tuple(ts), "stack", lambda g: tuple(np.take(g, i, axis=axis) for i in range(len(ts)))
    )


def where(condition: ArrayLike, a: Tensor | ArrayLike, b: Tensor | ArrayLike) -> Tensor:
    """Elementwise `condition ? a : b`; each branch gets the gradient where it was chosen."""
    cond = np.asarray(condition.data if isinstance(condition, Tensor) else condition, dtype=bool)
    a, b = Tensor._lift(a), Tensor._lift(b)
    shape = _broadcast_shape("where", a.shape, b.shape)
    _broadcast_shape("where", cond.shape, shape)
    out = np.where(cond, a.data, b.data)
    return Tensor._make(out, (a, b), "where", lambda g: (np.where(cond, g, 0.0), np.where(cond, 0.0, g)))


# Function forms, handy in code that mixes tensors and arrays.
def exp(x: Tensor) -> Tensor:
    return Tensor._lift(x).exp()


def log(x: Tensor) -> Tensor:
    return Tensor._lift(x).log()


def tanh(x: Tensor) -> Tensor:
    return Tensor._lift(x).tanh()


def sigmoid(x: Tensor) -> Tensor:
    return Tensor._lift(x).sigmoid()


def relu(x: Tensor) -> Tensor:
    return Tensor._lift(x).relu()


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    return Tensor._lift(x).gelu(approximate)


def softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Tensor._lift(x).softmax(axis)


def log_softmax(x: Tensor, axis: int = -1) -> Tensor:
    return Tensor._lift(x).log_softmax(axis)


__all__ = [
    "Tensor",
    "concatenate",
    "exp",
    "gelu",
    "is_grad_enabled",
    "log",
    "log_softmax",
    "matmul",
    "no_grad",
    "relu",
    "sigmoid",
    "softmax",
    "stack",
    "tanh",
    "tensor",
    "unbroadcast",
    "where",
]
