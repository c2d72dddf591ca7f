# %% [markdown]
# # F01 · A two-layer neural network in NumPy
#
# A neural network is a few matrix multiplications, one non-linearity and a rule for nudging the
# numbers downhill. In this notebook we write all of it by hand in NumPy — forward pass, loss,
# gradients, update — and watch a network learn to separate two interleaved spirals that no straight
# line can separate.
#
# ## What you'll learn
# - how a 2-layer network (Linear → tanh → Linear → softmax) turns 2-D points into class probabilities;
# - the cross-entropy loss and why its gradient with respect to the logits is simply `probs - onehot`;
# - the chain rule written out for every weight, and full-batch gradient descent;
# - what a *decision boundary* is, and why a linear model cannot draw the one we need while a hidden
#   layer can.

# %%
import matplotlib.pyplot as plt
import numpy as np

import bestiary
from bestiary.data import make_spirals
from bestiary.viz import plot_decision_regions

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: this notebook is pure NumPy on the CPU
bestiary.seed_everything(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## The data: two spirals
#
# Each class is an arm of a spiral: the angle grows with the radius, and the second arm is the first
# rotated by 180°, plus a little noise. `bestiary.data.make_spirals` generates them (seeded); we draw a
# training set and a separate test set to check that the network generalises rather than memorises.

# %%
X_train, y_train = make_spirals(600, noise=0.04, seed=0)  # X (600, 2) float32, y (600,) in {0, 1}
X_test, y_test = make_spirals(600, noise=0.04, seed=1)
X_train, X_test = X_train.astype(np.float64), X_test.astype(np.float64)  # float64 for the gradient check
print("train", X_train.shape, "test", X_test.shape)

# %% [markdown]
# **What to look for:** two arms wrapped around each other. Any straight line through the plane
# leaves a large part of each colour on the wrong side — a linear classifier is stuck far below the
# network (its accuracy is printed after training below).

# %%
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.scatter(*X_train.T, c=y_train, cmap="coolwarm", s=10, edgecolor="k", linewidth=0.2)
ax.set_title("Two spirals (training set)")
ax.set_aspect("equal")
plt.show()

# %% [markdown]
# ## The network
#
# With a batch of inputs $X \in \mathbb{R}^{N\times 2}$:
#
# $$H = \tanh(X W_1 + b_1), \qquad Z = H W_2 + b_2, \qquad P = \operatorname{softmax}(Z), \qquad
# L = -\frac1N \sum_i \log P_{i, y_i}.$$
#
# Backwards, one step of the chain rule at a time (the shapes of each gradient equal the shapes of
# the thing it is the gradient of):
#
# $$\frac{\partial L}{\partial Z} = \frac{P - Y_{\text{onehot}}}{N},\quad
# \frac{\partial L}{\partial W_2} = H^\top \frac{\partial L}{\partial Z},\quad
# \frac{\partial L}{\partial H} = \frac{\partial L}{\partial Z} W_2^\top,\quad
# \frac{\partial L}{\partial A} = \frac{\partial L}{\partial H} \odot (1 - H^2),\quad
# \frac{\partial L}{\partial W_1} = X^\top \frac{\partial L}{\partial A}.$$
#
# ($A = XW_1+b_1$ is the pre-activation; the bias gradients are the column sums of the same
# matrices.) F02 derives each of these rules carefully and checks them; here we just use them.


# %%
def init_params(n_in: int, n_hidden: int, n_out: int, rng: np.random.Generator) -> dict:
    # Scale by 1/sqrt(fan_in) so the pre-activations start with variance ~1: tanh is neither
    # saturated (gradients ~0) nor stuck in its linear part.
    return {
        "W1": rng.standard_normal((n_in, n_hidden)) / np.sqrt(n_in),
        "b1": np.zeros(n_hidden),
        "W2": rng.standard_normal((n_hidden, n_out)) / np.sqrt(n_hidden),
        "b2": np.zeros(n_out),
    }


def forward(params: dict, X: np.ndarray):
    H = np.tanh(X @ params["W1"] + params["b1"])  # (N, hidden)
    Z = H @ params["W2"] + params["b2"]  # (N, classes) logits
    Z = Z - Z.max(axis=1, keepdims=True)  # softmax is shift-invariant; this avoids exp overflow
    P = np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True)  # (N, classes)
    return H, P


def loss_and_grads(params: dict, X: np.ndarray, y: np.ndarray):
    N = len(y)
    H, P = forward(params, X)
    loss = -np.log(P[np.arange(N), y]).mean()
    dZ = P.copy()
    dZ[np.arange(N), y] -= 1.0  # P - onehot
    dZ /= N  # (N, classes)
    dA = (dZ @ params["W2"].T) * (1.0 - H**2)  # (N, hidden): tanh'(a) = 1 - tanh(a)^2
    grads = {"W2": H.T @ dZ, "b2": dZ.sum(0), "W1": X.T @ dA, "b1": dA.sum(0)}
    return loss, grads


def accuracy(params: dict, X: np.ndarray, y: np.ndarray) -> float:
    return float((forward(params, X)[1].argmax(1) == y).mean())


# %% [markdown]
# Before trusting the hand-written gradients, compare one entry of each against a centred finite
# difference $\frac{L(\theta+\epsilon) - L(\theta-\epsilon)}{2\epsilon}$. If the chain rule above were
# wrong anywhere, the relative error would be large instead of ~1e-7 or smaller.

# %%
check = init_params(2, 8, 2, rng)
_, g = loss_and_grads(check, X_train[:20], y_train[:20])
for name in check:
    idx = (0,) * check[name].ndim
    old = check[name][idx]
    eps = 1e-5
    check[name][idx] = old + eps
    lp, _ = loss_and_grads(check, X_train[:20], y_train[:20])
    check[name][idx] = old - eps
    lm, _ = loss_and_grads(check, X_train[:20], y_train[:20])
    check[name][idx] = old
    numeric = (lp - lm) / (2 * eps)
    rel = abs(numeric - g[name][idx]) / max(1e-12, abs(numeric) + abs(g[name][idx]))
    print(f"{name}: analytic {g[name][idx]:+.6f}  numeric {numeric:+.6f}  rel.err {rel:.1e}")
    assert rel < 1e-5, name

# %% [markdown]
# ## Training: full-batch gradient descent
#
# We train two models with the same loop: a **linear** model (no hidden layer: softmax regression,
# obtained here by a network whose hidden layer we skip) as the baseline, and the **2-layer** network
# with 64 tanh units.


# %%
def train(n_hidden: int | None, steps: int, lr: float, rng: np.random.Generator):
    if n_hidden is None:  # linear baseline: logits = X W + b, gradients from the same formula
        W, b = np.zeros((2, 2)), np.zeros(2)
        history = []
        for _ in range(steps):
            Z = X_train @ W + b
            P = np.exp(Z - Z.max(1, keepdims=True))
            P /= P.sum(1, keepdims=True)
            history.append(-np.log(P[np.arange(len(y_train)), y_train]).mean())
            dZ = P.copy()
            dZ[np.arange(len(y_train)), y_train] -= 1
            dZ /= len(y_train)
            W -= lr * X_train.T @ dZ
            b -= lr * dZ.sum(0)
        return {"W": W, "b": b}, history
    params = init_params(2, n_hidden, 2, rng)
    history = []
    for _ in range(steps):
        loss, grads = loss_and_grads(params, X_train, y_train)
        for k in params:
            params[k] -= lr * grads[k]
        history.append(loss)
    return params, history


STEPS = 8000 if QUICK else 20000
linear, linear_hist = train(None, STEPS, lr=0.5, rng=rng)
net, net_hist = train(64, STEPS, lr=0.3, rng=rng)
linear_acc = float(((X_test @ linear["W"] + linear["b"]).argmax(1) == y_test).mean())
net_acc = accuracy(net, X_test, y_test)
print(f"linear model test accuracy: {linear_acc:.3f}")
print(f"2-layer net  test accuracy: {net_acc:.3f}   (final train loss {net_hist[-1]:.3f})")

# %% [markdown]
# **What to look for:** on the left, the linear model's loss flattens almost immediately at a high
# value — it has found the best straight line and there is nothing more to learn. The network's loss
# keeps falling (a sudden spike on the way, if you see one, is a step that overshot and recovered;
# F04 looks at such steps). On the right, the network's decision regions (background colour) curl along the
# spiral arms; the linear model can only cut the plane in two half-planes.


# %%
def linear_proba(points):
    Z = points @ linear["W"] + linear["b"]
    P = np.exp(Z - Z.max(1, keepdims=True))
    return P / P.sum(1, keepdims=True)


fig, axes = plt.subplots(1, 3, figsize=(14, 4.3))
axes[0].plot(linear_hist, label="linear")
axes[0].plot(net_hist, label="2-layer, 64 tanh units")
axes[0].set(xlabel="step", ylabel="training cross-entropy", title="Loss", yscale="log")
axes[0].legend()
# bestiary.viz.plot_decision_regions evaluates a classifier on a grid covering the data and colours
# each point by the predicted class (paler where the model is less sure): the "decision regions".
plot_decision_regions(
    axes[1], linear_proba, X_test, y_test, title=f"linear: test acc {linear_acc:.2f}", dtype=np.float64
)
plot_decision_regions(
    axes[2],
    lambda pts: forward(net, pts)[1],
    X_test,
    y_test,
    title=f"2-layer net: test acc {net_acc:.2f}",
    dtype=np.float64,
)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Result
#
# The hidden layer is what makes the difference. The cell below asserts the comparison on the held-out
# spirals: the linear model stays below 75 % (it cannot, in principle, follow an arm), while the
# 2-layer network gets at least **97 %** in full mode (20000 steps) and at least **95 %** in quick mode
# (8000 steps) — and beats the linear model by at least 25 points in both.

# %%
print(
    f"2-layer net {net_acc:.3f} vs linear {linear_acc:.3f}: {100 * (net_acc - linear_acc):.0f} points apart"
)
assert linear_acc < 0.75, linear_acc
assert net_acc >= (0.95 if QUICK else 0.97), net_acc
assert net_acc - linear_acc >= 0.25, (net_acc, linear_acc)
print("OK: the hidden layer learns the spirals, the linear model cannot.")

# %% [markdown]
# ## Experiments to try
# - Shrink the hidden layer to 4 or 8 units. How many does it take to draw the spiral boundary?
# - Replace `tanh` by ReLU (`np.maximum(0, a)`, derivative `a > 0`). Remember to change the backward
#   pass too — then rerun the gradient check to see if you got it right.
# - Raise the learning rate to 1 or 2. The loss starts to spike, then training breaks down: the steps overshoot the valley (F04 shows this in 2-D).
# - Add a third spiral arm (three classes). Which lines of code must change?
# - Initialise `W1` with `* 10` instead of `/ sqrt(n_in)`. Why does training stall? (F03 explains.)
