# %% [markdown]
# # F02 · Backpropagation from scratch
#
# Backpropagation is the chain rule applied to a computation, one operation at a time, from the
# output backwards. Each operation only needs to know one thing: given the gradient of the loss with
# respect to its *output*, what is the gradient with respect to each of its *inputs*? In this
# notebook we write that rule for every operation a small neural network uses, check each one two
# independent ways — finite differences and PyTorch's autograd — and then chain them to backpropagate
# through a whole network.
#
# ## What you'll learn
# - the backward rule of add (with broadcasting), multiply, matmul, sum, mean, exp, log, tanh,
#   sigmoid, ReLU, softmax, mean-squared error and cross-entropy;
# - the trick that makes every check easy: with a random upstream gradient $G$, the scalar
#   $L = \sum G \odot f(x)$ has $\partial L/\partial f = G$;
# - how to do a finite-difference gradient check, and how to choose its step size $\epsilon$;
# - how a *tape* of operations turns these local rules into backpropagation for a whole network.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import bestiary

QUICK = bestiary.quick()  # everything here is small and exact: quick and full mode do the same work
DEVICE = bestiary.device()  # unused: NumPy on the CPU, torch only as the oracle
bestiary.seed_everything(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## The rules
#
# Write $G = \partial L/\partial Y$ for the gradient arriving at an operation's output $Y$. Each rule
# returns a gradient with the *shape of its input*:
#
# | operation | forward | backward |
# |---|---|---|
# | add (broadcast) | $Y = A + b$, $b$ of shape $(n,)$ | $\partial A = G$, $\partial b = \sum_{\text{rows}} G$ (a broadcast input sums over the axes it was copied along) |
# | multiply | $Y = A \odot B$ | $\partial A = G \odot B$, $\partial B = G \odot A$ |
# | matmul | $Y = AB$ | $\partial A = G B^\top$, $\partial B = A^\top G$ |
# | sum / mean | $y = \sum A$ / $\frac1n\sum A$ | $\partial A = G\,\mathbf 1$ / $\frac Gn \mathbf 1$ |
# | exp, log | $e^A$, $\log A$ | $G \odot e^A$, $G / A$ |
# | tanh, sigmoid | $\tanh A$, $\sigma(A)$ | $G \odot (1-Y^2)$, $G \odot Y(1-Y)$ |
# | ReLU | $\max(0, A)$ | $G \odot [A > 0]$ |
# | softmax (rows) | $Y_{ij} = e^{A_{ij}}/\sum_k e^{A_{ik}}$ | $\partial A = Y \odot \big(G - \sum_k G_{ik} Y_{ik}\big)$ |
# | MSE | $\frac1N\sum (A - T)^2$ | $\frac{2G}{N}(A - T)$ |
# | cross-entropy | $-\frac1N\sum_i \log \operatorname{softmax}(A)_{i,y_i}$ | $\frac GN(\operatorname{softmax}(A) - \text{onehot}(y))$ |


# %%
def softmax(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


TARGET = rng.standard_normal((4, 3))  # fixed target for MSE
LABELS = np.array([0, 2, 1, 2])  # fixed labels for cross-entropy

# name -> (forward in NumPy, backward in NumPy, the same forward in torch, input shapes)
OPS = {
    "add (broadcast)": (
        lambda a, b: a + b,
        lambda g, a, b: (g, g.sum(0)),
        lambda a, b: a + b,
        [(4, 3), (3,)],
    ),
    "multiply": (lambda a, b: a * b, lambda g, a, b: (g * b, g * a), lambda a, b: a * b, [(4, 3), (4, 3)]),
    "matmul": (lambda a, b: a @ b, lambda g, a, b: (g @ b.T, a.T @ g), lambda a, b: a @ b, [(4, 5), (5, 3)]),
    "sum": (lambda a: a.sum(), lambda g, a: (g * np.ones_like(a),), lambda a: a.sum(), [(4, 3)]),
    "mean": (lambda a: a.mean(), lambda g, a: (g * np.ones_like(a) / a.size,), lambda a: a.mean(), [(4, 3)]),
    "exp": (np.exp, lambda g, a: (g * np.exp(a),), torch.exp, [(4, 3)]),
    "log": (
        lambda a: np.log(np.abs(a) + 0.5),
        lambda g, a: (g * np.sign(a) / (np.abs(a) + 0.5),),
        lambda a: torch.log(a.abs() + 0.5),
        [(4, 3)],
    ),
    "tanh": (np.tanh, lambda g, a: (g * (1 - np.tanh(a) ** 2),), torch.tanh, [(4, 3)]),
    "sigmoid": (
        lambda a: 1 / (1 + np.exp(-a)),
        lambda g, a: (g * (1 / (1 + np.exp(-a))) * (1 - 1 / (1 + np.exp(-a))),),
        torch.sigmoid,
        [(4, 3)],
    ),
    "relu": (lambda a: np.maximum(a, 0), lambda g, a: (g * (a > 0),), torch.relu, [(4, 3)]),
    "softmax": (
        softmax,
        lambda g, a: (softmax(a) * (g - (g * softmax(a)).sum(-1, keepdims=True)),),
        lambda a: torch.softmax(a, -1),
        [(4, 3)],
    ),
    "mse": (
        lambda a: ((a - TARGET) ** 2).mean(),
        lambda g, a: (g * 2 * (a - TARGET) / a.size,),
        lambda a: ((a - torch.tensor(TARGET)) ** 2).mean(),
        [(4, 3)],
    ),
    "cross-entropy": (
        lambda a: -np.log(softmax(a)[np.arange(4), LABELS]).mean(),
        lambda g, a: (g * (softmax(a) - np.eye(3)[LABELS]) / len(LABELS),),
        lambda a: torch.nn.functional.cross_entropy(a, torch.tensor(LABELS)),
        [(4, 3)],
    ),
}
# (log is applied to |a| + 0.5 so that random inputs stay in its domain; its rule follows by the chain rule.)

# %% [markdown]
# ## Checking a rule two ways
#
# With a random upstream gradient $G$ (same shape as the output), $L(x) = \sum G \odot f(x)$ is a
# scalar whose gradient with respect to the inputs is exactly what the backward rule must return.
#
# 1. **Finite differences:** nudge one input entry by $\pm\epsilon$ and measure
#    $\big(L(x+\epsilon) - L(x-\epsilon)\big)/2\epsilon$ — no calculus involved, error $O(\epsilon^2)$.
# 2. **torch autograd** in float64: an independent implementation of the same rules.
#
# We report the relative error $\max|\text{ours} - \text{ref}| / \max(|\text{ours}| + |\text{ref}|)$.


# %%
def numeric_grad(f, inputs, G, i, eps=1e-6):
    """Central finite differences of L = sum(G * f(*inputs)) with respect to inputs[i]."""
    grad = np.zeros_like(inputs[i])
    for idx in np.ndindex(inputs[i].shape):
        old = inputs[i][idx]
        inputs[i][idx] = old + eps
        plus = (G * f(*inputs)).sum()
        inputs[i][idx] = old - eps
        minus = (G * f(*inputs)).sum()
        inputs[i][idx] = old
        grad[idx] = (plus - minus) / (2 * eps)
    return grad


def rel_err(a, b):
    return float(np.abs(a - b).max() / max(1e-300, (np.abs(a) + np.abs(b)).max()))


rows = []
for name, (fwd, bwd, torch_fwd, shapes) in OPS.items():
    inputs = [rng.standard_normal(s) for s in shapes]
    G = rng.standard_normal(np.shape(fwd(*inputs)))
    ours = bwd(G, *inputs)
    tin = [torch.tensor(x, requires_grad=True) for x in inputs]
    (torch.tensor(G) * torch_fwd(*tin)).sum().backward()
    for i in range(len(inputs)):
        rows.append(
            {
                "op": name,
                "input": "AB"[i] if len(inputs) > 1 else "A",
                "shape": shapes[i],
                "vs finite diff.": rel_err(ours[i], numeric_grad(fwd, inputs, G, i)),
                "vs torch": rel_err(ours[i], tin[i].grad.numpy()),
            }
        )
table = pd.DataFrame(rows)
pd.set_option("display.float_format", "{:.1e}".format)
print(table.to_string(index=False))

# %% [markdown]
# **What to look for:** every rule agrees with torch to ~1e-16 (rounding only: the same formula,
# computed in a different order) and with finite differences to ~1e-9 or better — the finite
# difference is the less precise of the two references, not our rules. Bars at the floor (1e-20)
# mean *exactly* equal to torch.

# %%
fig, ax = plt.subplots(figsize=(10, 4))
labels = [f"{r.op} ∂{r.input}" for r in table.itertuples()]
x = np.arange(len(table))
ax.bar(x - 0.2, table["vs finite diff."] + 1e-20, 0.4, label="vs finite differences (ε = 1e-6)")
ax.bar(x + 0.2, table["vs torch"] + 1e-20, 0.4, label="vs torch autograd")
ax.set_yscale("log")
ax.set_xticks(x, labels, rotation=60, ha="right")
ax.set(ylabel="relative error", title="Every backward rule, checked two ways", ylim=(1e-21, 1e-5))
ax.legend(loc="upper center", ncol=2)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Choosing $\epsilon$ for a gradient check
#
# The central difference has a *truncation* error $\approx \epsilon^2 |f'''|/6$ (smaller $\epsilon$ is
# better) and a *rounding* error $\approx 10^{-16}|f|/\epsilon$ from subtracting two nearly equal
# float64 numbers (larger $\epsilon$ is better). The sweet spot is in between.
#
# **What to look for:** a V on the log-log plot for the central difference: slope 2 on the right
# (truncation), slope −1 on the left (rounding), the minimum near $\epsilon \approx 10^{-5}$. The
# one-sided difference $(f(x+\epsilon)-f(x))/\epsilon$ has truncation error $O(\epsilon)$: on the right
# its line has slope 1 and lies orders of magnitude above the central one, and its best point (near
# $\epsilon \approx 10^{-8}$) is far worse than the central difference's best. On the far left the two
# curves merge: below $\epsilon \approx 10^{-9}$ both are pure rounding noise of the same size, and at
# some of those $\epsilon$ the one-sided difference is even the more accurate one, by luck. So "the
# central difference is better" holds for every $\epsilon$ you would actually choose, not for all
# $\epsilon$.

# %%
eps_grid = np.logspace(-12, -1, 45)
x0 = 0.7
exact = 1 - np.tanh(x0) ** 2
central = np.array([abs((np.tanh(x0 + e) - np.tanh(x0 - e)) / (2 * e) - exact) for e in eps_grid])
forward = np.array([abs((np.tanh(x0 + e) - np.tanh(x0)) / e - exact) for e in eps_grid])
fig, ax = plt.subplots(figsize=(6.5, 4))
ax.loglog(eps_grid, np.maximum(central, 1e-17), "o-", ms=3, label="central difference")
ax.loglog(eps_grid, np.maximum(forward, 1e-17), "s-", ms=3, label="forward (one-sided) difference")
ax.axvspan(eps_grid[0], 1e-9, color="0.9", zorder=0, label="rounding noise dominates both")
ax.set(xlabel="ε", ylabel="|numeric − exact| for tanh'(0.7)", title="Finite-difference error vs step size")
ax.legend(fontsize=8)
plt.show()

right, tiny = eps_grid >= 1e-3, eps_grid <= 1e-9
slope_central = np.polyfit(np.log10(eps_grid[right]), np.log10(central[right]), 1)[0]
slope_forward = np.polyfit(np.log10(eps_grid[right]), np.log10(forward[right]), 1)[0]
best_eps = eps_grid[int(np.argmin(central))]
forward_wins_tiny = int((forward[tiny] < central[tiny]).sum())
print(f"slopes for ε ≥ 1e-3: central {slope_central:.2f}, forward {slope_forward:.2f}")
print(
    f"best ε: central {best_eps:.0e} (error {central.min():.1e}), forward {eps_grid[forward.argmin()]:.0e} (error {forward.min():.1e})"
)
print(
    f"for ε ≤ 1e-9 the forward difference is the more accurate one at {forward_wins_tiny} of {tiny.sum()} step sizes"
)

# %% [markdown]
# ## Chaining the rules: backprop through a network
#
# A *tape* records each operation as the forward pass runs: which op, which named inputs, which named
# output. Backward walks the tape in reverse, calls each op's rule with the gradient of its output,
# and **adds** the results into the gradients of its inputs (a value used twice receives two
# contributions). That is all backpropagation is — F05 turns the same idea into an autograd engine.
#
# The network: $H = \tanh(XW_1 + b_1)$, $Z = HW_2 + b_2$, $L = \text{cross-entropy}(Z, y)$, on a batch
# of 4 with 3 classes.

# %%
values = {
    "X": rng.standard_normal((4, 5)),
    "W1": rng.standard_normal((5, 6)) * 0.5,
    "b1": rng.standard_normal(6) * 0.1,
    "W2": rng.standard_normal((6, 3)) * 0.5,
    "b2": rng.standard_normal(3) * 0.1,
}
tape = []


def run(op, inputs, out):
    values[out] = OPS[op][0](*(values[n] for n in inputs))
    tape.append((op, inputs, out))


run("matmul", ["X", "W1"], "A1")
run("add (broadcast)", ["A1", "b1"], "P1")
run("tanh", ["P1"], "H")
run("matmul", ["H", "W2"], "A2")
run("add (broadcast)", ["A2", "b2"], "Z")
run("cross-entropy", ["Z"], "L")

grads = {"L": np.array(1.0)}  # dL/dL = 1
for op, inputs, out in reversed(tape):
    for name, g in zip(inputs, OPS[op][1](grads[out], *(values[n] for n in inputs))):
        grads[name] = grads.get(name, 0) + g  # accumulate

t = {k: torch.tensor(values[k], requires_grad=True) for k in ["X", "W1", "b1", "W2", "b2"]}
loss = torch.nn.functional.cross_entropy(
    torch.tanh(t["X"] @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"], torch.tensor(LABELS)
)
loss.backward()
net_err = {k: rel_err(grads[k], t[k].grad.numpy()) for k in t}
print(f"loss: tape {float(values['L']):.12f}  torch {loss.item():.12f}")
print({k: f"{v:.1e}" for k, v in net_err.items()})

# %% [markdown]
# ## Result
#
# The same in quick and full mode (nothing here is trained, so the thresholds are the same): every
# rule matches torch autograd to a relative error below 1e-12 and finite differences below 1e-6; the
# central difference's error falls with slope 2 (between 1.8 and 2.2) and the one-sided difference's
# with slope 1 (0.8–1.2) for large $\epsilon$; the central difference is most accurate for
# $\epsilon$ between 1e-7 and 1e-3, and its best error is at least 100 times smaller than the
# one-sided difference's best; below $\epsilon = 10^{-9}$ neither is reliably better (the one-sided
# difference wins at least once); and the tape-based backward pass through the whole network matches
# torch to below 1e-12.

# %%
assert table["vs torch"].max() < 1e-12, table
assert table["vs finite diff."].max() < 1e-6, table
assert 1.8 < slope_central < 2.2 and 0.8 < slope_forward < 1.2, (slope_central, slope_forward)
assert 1e-7 <= best_eps <= 1e-3, best_eps
assert forward.min() > 100 * central.min(), (forward.min(), central.min())
assert forward_wins_tiny >= 1, forward_wins_tiny
assert max(net_err.values()) < 1e-12, net_err
assert abs(float(values["L"]) - loss.item()) < 1e-12
print("OK: all backward rules verified")

# %% [markdown]
# ## Experiments to try
# - Break a rule on purpose (e.g. forget the `.sum(0)` for the broadcast bias) and see which check
#   catches it, and with what error message.
# - Add layer normalisation $\frac{a - \mu}{\sqrt{\sigma^2+\epsilon}}$ to `OPS` with its backward rule,
#   and check it. (Hint: $\mu$ and $\sigma^2$ depend on every input.)
# - Run the gradient check in float32 (`.astype(np.float32)`). Where is the best $\epsilon$ now?
# - Add a residual connection `Z = Z + H @ W3` to the network: the tape handles the branch by
#   accumulation — check it against torch.
