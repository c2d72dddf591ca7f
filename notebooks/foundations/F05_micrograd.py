# %% [markdown]
# # F05 · micrograd: an autograd engine in 50 lines
#
# In F01–F04 we wrote every gradient by hand. That does not scale: change the model and you rewrite
# the backward pass. *Automatic differentiation* records the computation as a graph while it runs,
# then applies the chain rule backwards through the graph for you. PyTorch's autograd does this for
# tensors; here we build the same idea for single numbers, in the style of Andrej Karpathy's
# *micrograd* (2020), check it against PyTorch, and train a small neural network with it.
#
# ## What you'll learn
# - how a `Value` records its parents and a local `_backward` rule while the forward pass runs;
# - why `backward()` needs a topological order, and why gradients must *accumulate* (`+=`);
# - how to verify an autograd engine against `torch.autograd`;
# - that a neural network is nothing but a big expression of such scalars — and how slow that is;
# - training an MLP on our own engine, beating a linear model on XOR, and checking that the library's
#   `bestiary.scratch.Value` trains it to the same weights.

# %%
import math
import random
import time

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import torch
from tqdm.auto import tqdm

import bestiary
from bestiary.data import make_clusters
from bestiary.viz import plot_decision_regions

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: scalars in pure Python
bestiary.seed_everything(0)

# %% [markdown]
# ## The engine
#
# Each operation creates a new `Value` holding the result, remembers its inputs (`_prev`) and defines
# a closure `_backward` that knows its *local* derivative: for $c = a\cdot b$, it adds
# $\partial c/\partial a \cdot$ `c.grad` $= b \cdot$ `c.grad` to `a.grad`, and $a\cdot$ `c.grad` to
# `b.grad`. `backward()` on the output sets its gradient to 1 and calls every node's `_backward` in
# reverse topological order, so a node's gradient is complete before it is passed on.
#
# The `+=` matters: in `a * a` (or whenever a value feeds two places), both paths contribute to
# `a.grad` — the multivariable chain rule sums over paths.


# %%
class Value:
    def __init__(self, data, _prev=(), _op=""):
        self.data, self.grad = float(data), 0.0
        self._prev, self._op = _prev, _op
        self._backward = lambda: None

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += out.grad  # d(a+b)/da = 1
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += other.data * out.grad  # d(ab)/da = b
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, k):  # k is a plain number
        out = Value(self.data**k, (self,), f"**{k}")

        def _backward():
            self.grad += k * self.data ** (k - 1) * out.grad

        out._backward = _backward
        return out

    def tanh(self):
        t = math.tanh(self.data)
        out = Value(t, (self,), "tanh")

        def _backward():
            self.grad += (1 - t**2) * out.grad

        out._backward = _backward
        return out

    def exp(self):
        out = Value(math.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad  # d(e^x)/dx = e^x

        out._backward = _backward
        return out

    # Everything else is built from the operations above.
    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + (-other)

    def __truediv__(self, other):
        return self * other**-1

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def backward(self):
        order, seen = [], set()

        def visit(v):  # depth-first: a node is appended after all of its inputs
            if v not in seen:
                seen.add(v)
                for parent in v._prev:
                    visit(parent)
                order.append(v)

        visit(self)
        self.grad = 1.0
        for v in reversed(order):
            v._backward()

    def __repr__(self):
        return f"Value(data={self.data:.4f}, grad={self.grad:.4f})"


# %% [markdown]
# ## One neuron, by hand and by torch
#
# A neuron with two inputs, $y = \tanh(w_1x_1 + w_2x_2 + b)$, followed by a made-up loss that uses
# $y$ twice, $L = y^2 + e^{y}/(1 + x_1)$ — so the accumulation rule gets exercised.

# %%
x1, x2, w1, w2, b = Value(2.0), Value(0.5), Value(-3.0), Value(1.0), Value(6.88)
y = (w1 * x1 + w2 * x2 + b).tanh()
L = y**2 + y.exp() / (1 + x1)
L.backward()
ours = {"x1": x1.grad, "x2": x2.grad, "w1": w1.grad, "w2": w2.grad, "b": b.grad}

tx = {
    n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
    for n, v in [("x1", 2.0), ("x2", 0.5), ("w1", -3.0), ("w2", 1.0), ("b", 6.88)]
}
ty = torch.tanh(tx["w1"] * tx["x1"] + tx["w2"] * tx["x2"] + tx["b"])
tL = ty**2 + torch.exp(ty) / (1 + tx["x1"])
tL.backward()
print(f"L: ours {L.data:.12f}  torch {tL.item():.12f}")
for n in ours:
    print(f"dL/d{n:2s}: ours {ours[n]:+.12f}  torch {tx[n].grad.item():+.12f}")
    assert abs(ours[n] - tx[n].grad.item()) < 1e-12, n
assert abs(L.data - tL.item()) < 1e-12

# %% [markdown]
# **What to look for:** the graph the forward pass recorded. Leaves (inputs and weights) on the left,
# the loss on the right; each node shows its value and, after `backward()`, its gradient. Note `tanh`
# has two outgoing edges: its gradient is the sum of what flows back along both.

# %%
G, labels = nx.DiGraph(), {}
leaf_names = {id(v): n for n, v in [("x1", x1), ("x2", x2), ("w1", w1), ("w2", w2), ("b", b)]}


def build(v):
    if id(v) in G:
        return
    G.add_node(id(v))
    name = v._op or leaf_names.get(id(v), "const")
    labels[id(v)] = f"{name}\n{v.data:.3f}\ng={v.grad:.3f}"
    for parent in v._prev:
        build(parent)
        G.add_edge(id(parent), id(v))


build(L)
for layer, nodes in enumerate(nx.topological_generations(G)):
    for n in nodes:
        G.nodes[n]["layer"] = layer
pos = nx.multipartite_layout(G, subset_key="layer")
fig, ax = plt.subplots(figsize=(14, 6))
nx.draw_networkx(
    G, pos, labels=labels, node_size=1900, node_color="#cfe3f7", font_size=7, arrowsize=12, ax=ax
)
ax.set_title("Computation graph of L = y² + exp(y)/(1 + x1),  y = tanh(w1·x1 + w2·x2 + b)")
ax.axis("off")
plt.show()

# %% [markdown]
# ## A neural network out of our Values
#
# A neuron is $\tanh(\sum_i w_i x_i + b)$ over `Value`s; a layer is a list of neurons; an MLP is a list
# of layers whose last one is linear (its output is a score). That is all of it — below, on the
# notebook's own `Value`. The weights start uniform in $\pm 1/\sqrt{n_{\text{in}}}$ (torch's rule),
# drawn from a seeded `random.Random`.
#
# The task: XOR in two dimensions. Four Gaussian clusters sit on a circle (`make_clusters`, 4 classes);
# the clusters left and right are class +1, the clusters above and below class −1. No straight line
# separates them — a single neuron cannot compute XOR (Minsky & Papert, 1969) — so a linear model is
# stuck between 50 and 75 % (it can at best get three of the four clusters right). Labels $\pm1$, a
# max-margin (hinge) loss $\frac1N\sum_i \max(0, 1 - y_i s_i)$ plus a little L2 regularisation —
# every number in it a `Value`. As the baseline we train, with the very same code, the MLP without a
# hidden layer: a single linear neuron.


# %%
class Neuron:
    def __init__(self, n_in, rng, nonlin=True):
        bound = 1 / math.sqrt(n_in)
        self.w = [Value(rng.uniform(-bound, bound)) for _ in range(n_in)]
        self.b = Value(rng.uniform(-bound, bound))
        self.nonlin = nonlin

    def __call__(self, x):
        z = sum((wi * xi for wi, xi in zip(self.w, x)), self.b)  # b + w1*x1 + w2*x2 + ...
        return z.tanh() if self.nonlin else z

    def parameters(self):
        return [*self.w, self.b]


class MLP:
    def __init__(self, n_in, sizes, seed):
        rng, dims = random.Random(seed), [n_in, *sizes]
        self.layers = [
            [Neuron(dims[i], rng, nonlin=i < len(sizes) - 1) for _ in range(dims[i + 1])]
            for i in range(len(sizes))
        ]

    def __call__(self, x):
        for layer in self.layers:
            x = [neuron(x) for neuron in layer]
        return x[0]  # one output: the score

    def parameters(self):
        return [p for layer in self.layers for neuron in layer for p in neuron.parameters()]


def loss_fn(model, points, labels):
    scores = [model(list(p)) for p in points]
    hinge = sum((1 + -yi * s) if yi * s.data < 1 else 0 for yi, s in zip(labels, scores)) * (1 / len(points))
    l2 = 1e-4 * sum(p * p for p in model.parameters())
    accuracy = np.mean([(s.data > 0) == (yi > 0) for yi, s in zip(labels, scores)])
    return hinge + l2, accuracy


def sgd(model, points, labels, steps, desc):
    history = []
    for step in tqdm(range(steps), desc=desc):
        loss, acc = loss_fn(model, points, labels)
        for p in model.parameters():
            p.grad = 0.0  # gradients accumulate: reset them before every backward pass
        loss.backward()
        lr = 1.0 - 0.9 * step / steps  # decay the step size as we go
        for p in model.parameters():
            p.data -= lr * p.grad
        history.append((loss.data, acc))
    return history


def test_accuracy(model, points, labels):
    return float(np.mean([(model(list(p)).data > 0) == (yi > 0) for p, yi in zip(points, labels)]))


def xor_data(n, seed):
    X, cluster = make_clusters(n, 4, std=0.6, radius=1.5, seed=seed)  # centres at 0°, 90°, 180°, 270°
    y01 = cluster % 2  # left/right clusters -> 0, top/bottom -> 1
    return X.astype(float), y01, (2.0 * y01 - 1).tolist()  # labels -1 / +1 as Python floats


N_TRAIN = 60 if QUICK else 100
X, y01, ylab = xor_data(N_TRAIN, seed=0)
X_test, y_test01, y_test = xor_data(300, seed=1)
SIZES = [8, 1]
model = MLP(2, SIZES, seed=0)
linear = MLP(2, [1], seed=0)
print(
    f"MLP 2-{'-'.join(map(str, SIZES))}: {len(model.parameters())} parameters; linear: {len(linear.parameters())}"
)

# %% [markdown]
# Before training, a check of the whole thing: the gradient of the loss with respect to every
# parameter of the MLP, compared with the same network written in torch (weights copied).

# %%
loss, _ = loss_fn(model, X[:10], ylab[:10])
for p in model.parameters():
    p.grad = 0.0
loss.backward()
ours = np.array([p.grad for p in model.parameters()])

params_t = torch.tensor([p.data for p in model.parameters()], dtype=torch.float64, requires_grad=True)
i, h = 0, torch.tensor(X[:10])
for li, layer in enumerate(model.layers):
    n_in, n_out = len(layer[0].w), len(layer)
    # parameters are ordered neuron by neuron: [w_1 .. w_n_in, b] for each neuron
    block = params_t[i : i + n_out * (n_in + 1)].reshape(n_out, n_in + 1)
    i += n_out * (n_in + 1)
    h = h @ block[:, :n_in].T + block[:, n_in]
    if li < len(model.layers) - 1:
        h = torch.tanh(h)
margin = 1 - torch.tensor(ylab[:10]) * h[:, 0]
loss_t = torch.where(margin > 0, margin, torch.zeros_like(margin)).mean() + 1e-4 * (params_t**2).sum()
loss_t.backward()
grad_diff = np.abs(ours - params_t.grad.numpy()).max()
print(f"loss ours {loss.data:.10f}  torch {loss_t.item():.10f};  max |grad diff| = {grad_diff:.1e}")
assert np.allclose(ours, params_t.grad.numpy(), atol=1e-10)

# %% [markdown]
# ### Train with plain SGD, on our engine
#
# Each step rebuilds the graph for all points (thousands of `Value` nodes), then walks it backwards —
# in pure Python, which is why this is slow and why real libraries work on whole arrays
# (`bestiary.scratch.Tensor`, then PyTorch). Quick mode trains on 60 points for 40 steps, full mode
# on 100 points for 150 steps; the accuracy is measured on 300 new points.

# %%
STEPS = 40 if QUICK else 150
t0 = time.perf_counter()
history = sgd(model, X, ylab, STEPS, "our engine: MLP")
seconds = time.perf_counter() - t0
linear_history = sgd(linear, X, ylab, STEPS, "our engine: linear")
mlp_acc, linear_acc = test_accuracy(model, X_test, y_test), test_accuracy(linear, X_test, y_test)
print(
    f"{STEPS} steps in {seconds:.1f} s; training accuracy: MLP {history[-1][1]:.2f}, linear {linear_history[-1][1]:.2f}"
)
print(f"held-out accuracy (300 new points): MLP {mlp_acc:.3f}, linear {linear_acc:.3f}")

# %% [markdown]
# ### Hand over to the library
#
# `bestiary.scratch` has this engine in full (more operations, input checks, an iterative
# topological sort that survives very deep graphs, tests against torch) and the same MLP on it:
# `Value`, `MicroMLP`. Built with the same seed it starts from the same weights; trained with the same
# loop it must end with the same weights — the check that our 50 lines and the library are the same
# engine. (Gradients may differ in the last bits — the two sort the graph in different orders, so
# sums are added up in different orders — hence a tolerance instead of `==`.) From here on, later
# notebooks import `bestiary.scratch.Value`.

# %%
from bestiary.scratch import MicroMLP  # noqa: E402  (imported here: it is the engine we just built)
from bestiary.scratch import Value as LibValue  # noqa: E402

lib_model = MicroMLP(2, SIZES, activation="tanh", seed=0)
assert [p.data for p in lib_model.parameters()] == [p.data for p in MLP(2, SIZES, seed=0).parameters()]
assert isinstance(lib_model.parameters()[0], LibValue)  # loss_fn and sgd only use the model's Values
lib_history = sgd(lib_model, X, ylab, STEPS, "library engine: MLP")
weight_diff = max(abs(a.data - b.data) for a, b in zip(model.parameters(), lib_model.parameters()))
loss_diff = max(abs(a[0] - b[0]) for a, b in zip(history, lib_history))
print(
    f"after {STEPS} steps: max |our weight - library weight| = {weight_diff:.1e}, max loss difference {loss_diff:.1e}"
)
assert weight_diff < 1e-9 and loss_diff < 1e-9

# %% [markdown]
# **What to look for:** left, the MLP's loss falls well below the linear neuron's, which levels off
# high: the best straight line still gets at least one cluster wrong. Middle and right, the decision
# regions with the 300 held-out points on top. The linear model cuts the plane in two half-planes, so
# at least one cluster (often half of two) lands on the wrong side. The MLP's boundary is no longer
# one straight line: it has two pieces (in our runs, two roughly parallel lines enclosing a band) that
# put the top and bottom clusters on one side and the left and right clusters on the other — the XOR
# that one neuron cannot draw. (The staircase edges are the 40 × 40 grid: each grid point costs a
# forward pass through the scalar engine.)

# %%
fig, axes = plt.subplots(1, 3, figsize=(16, 4.3))
axes[0].plot([h[0] for h in history], label="MLP loss")
axes[0].plot([h[0] for h in linear_history], label="linear loss")
axes[0].plot([h[1] for h in history], "--", color="C0", label="MLP training accuracy")
axes[0].plot([h[1] for h in linear_history], "--", color="C1", label="linear training accuracy")
axes[0].set(xlabel="step", title="Training on our engine")
axes[0].legend(fontsize=8)
for ax, m, name, acc in [(axes[1], linear, "linear neuron", linear_acc), (axes[2], model, "MLP", mlp_acc)]:
    plot_decision_regions(
        ax,
        lambda pts, m=m: np.array([int(m(list(pt)).data > 0) for pt in pts]),
        X_test,
        y_test01,
        title=f"{name}: held-out accuracy {acc:.2f}",
        resolution=40,
        dtype=np.float64,
    )
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Result
#
# The engine agrees with torch autograd to 1e-12 on the single neuron and to 1e-10 on every parameter
# of the MLP, and training on it ends with the same weights as the library's `bestiary.scratch.Value`
# (to 1e-9). The lesson's claim — a hidden layer lets the net learn XOR, which a single neuron cannot —
# is asserted on 300 held-out points: the MLP must beat the linear neuron by at least 15 points of
# accuracy and reach at least 85 % in full mode (150 steps, 100 training points), and beat it by at
# least 20 points and reach at least 80 % in quick mode (40 steps, 60 points; the linear neuron has
# had less time too, so it sits closer to 50 %).

# %%
print(f"MLP {mlp_acc:.3f} vs linear {linear_acc:.3f}: a margin of {100 * (mlp_acc - linear_acc):.1f} points")
assert mlp_acc - linear_acc >= (0.20 if QUICK else 0.15), (mlp_acc, linear_acc)
assert mlp_acc >= (0.80 if QUICK else 0.85), mlp_acc
print("OK")

# %% [markdown]
# ## Experiments to try
# - Add `relu` and `log` to the notebook's `Value` (forward and `_backward`) and check them against torch.
# - Remove the `+=` in `__mul__` (use `=`). Which gradient of the neuron example goes wrong, and why?
# - Time one training step and count the `Value` nodes in the graph. How many nodes per second?
# - Replace the hinge loss with binary cross-entropy (`sigmoid` and `log`). Does the boundary change?
# - Write the same MLP with `bestiary.scratch.Tensor` (arrays instead of scalars) and compare the speed.
# - Give the linear baseline 1000 steps. Can it get past 75 %? Why not?
# - Swap the task for `bestiary.data.make_moons`: how many more steps does the MLP need to beat the
#   linear neuron by a wide margin there?
