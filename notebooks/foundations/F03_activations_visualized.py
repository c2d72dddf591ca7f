# %% [markdown]
# # F03 · Activation functions, visualized
#
# Without a non-linearity between them, a stack of linear layers collapses into a single linear
# layer. The activation function is what buys depth its power — and its derivative decides whether
# the gradient survives the trip back through the stack. This notebook plots the common activations
# and their derivatives, measures how the gradient shrinks layer by layer in a deep net, shows ReLU
# units that die, and trains the same deep network with each activation (with a widget to pick one).
#
# ## What you'll learn
# - the shapes of sigmoid, tanh, ReLU, GELU and Swish (SiLU) and of their derivatives;
# - why deep sigmoid networks suffer from *vanishing gradients* (σ' ≤ 1/4, multiplied once per layer);
# - what a *dead ReLU* is and how a too-large learning rate produces many of them;
# - how the choice of activation changes how fast the same deep network trains.

# %%
import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display
from tqdm.auto import tqdm

import bestiary
from bestiary.data import make_spirals

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: this notebook is pure NumPy
bestiary.seed_everything(0)

# %% [markdown]
# ## The functions and their derivatives
#
# Each activation comes with its derivative written by hand — that derivative is exactly the factor
# the backward pass multiplies in at every layer.
#
# | name | $f(x)$ | $f'(x)$ |
# |---|---|---|
# | sigmoid | $\sigma(x) = 1/(1+e^{-x})$ | $\sigma(x)(1-\sigma(x)) \le 1/4$ |
# | tanh | $\tanh x$ | $1-\tanh^2 x \le 1$ |
# | ReLU | $\max(0,x)$ | $1$ if $x>0$ else $0$ |
# | GELU (tanh approx.) | $\tfrac12 x (1+\tanh u)$, $u=\sqrt{2/\pi}(x+0.044715x^3)$ | $\tfrac12(1+\tanh u) + \tfrac12 x (1-\tanh^2 u)\,u'$ |
# | Swish / SiLU | $x\,\sigma(x)$ | $\sigma(x) + x\,\sigma(x)(1-\sigma(x))$ |


# %%
def sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # same as 1/(1+exp(-x)) but never overflows


def _gelu_u(x):
    return np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)


ACTIVATIONS = {  # name -> (f, f')
    "sigmoid": (sigmoid, lambda x: sigmoid(x) * (1 - sigmoid(x))),
    "tanh": (np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "relu": (lambda x: np.maximum(0.0, x), lambda x: (x > 0).astype(float)),
    "gelu": (
        lambda x: 0.5 * x * (1 + np.tanh(_gelu_u(x))),
        lambda x: (
            0.5 * (1 + np.tanh(_gelu_u(x)))
            + 0.5 * x * (1 - np.tanh(_gelu_u(x)) ** 2) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
        ),
    ),
    "swish": (lambda x: x * sigmoid(x), lambda x: sigmoid(x) + x * sigmoid(x) * (1 - sigmoid(x))),
}

# Check every hand-written derivative against a centred finite difference (avoiding x = 0 where
# ReLU has a kink).
xs = np.linspace(-4, 4, 401)
xs = xs[np.abs(xs) > 1e-3]
for name, (f, df) in ACTIVATIONS.items():
    numeric = (f(xs + 1e-6) - f(xs - 1e-6)) / 2e-6
    err = np.max(np.abs(numeric - df(xs)))
    print(f"{name:8s} max |f' - finite difference| = {err:.1e}")
    assert err < 1e-6, name

# %% [markdown]
# **What to look for:** on the right, the sigmoid's derivative never exceeds 0.25 and tanh's never
# exceeds 1, and both fall to ~0 for |x| > 4 (*saturation*). ReLU's derivative is exactly 1 for
# positive inputs — and exactly 0 for negative ones. GELU and Swish are smooth ReLUs: they let a
# little gradient through for slightly negative inputs and even dip below zero.

# %%
x = np.linspace(-5, 5, 500)
fig, (ax_f, ax_d) = plt.subplots(1, 2, figsize=(12, 4))
for name, (f, df) in ACTIVATIONS.items():
    ax_f.plot(x, f(x), label=name)
    ax_d.plot(x, df(x), label=name)
ax_f.set(title="activation f(x)", xlabel="x", ylim=(-1.5, 3))
ax_d.set(title="derivative f'(x)", xlabel="x")
ax_d.axhline(0.25, color="gray", ls=":", lw=1)
ax_d.text(-4.9, 0.27, "max of sigmoid' = 0.25", color="gray")
for ax in (ax_f, ax_d):
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.legend()
plt.show()

# %% [markdown]
# ## A deep MLP by hand
#
# To study gradient flow we need a network of any depth with any activation. Forward: $h_{l} =
# f(a_l)$, $a_l = h_{l-1}W_l + b_l$. Backward, layer by layer from the top:
# $\partial L/\partial a_l = \partial L/\partial h_l \odot f'(a_l)$, then
# $\partial L/\partial W_l = h_{l-1}^\top\,\partial L/\partial a_l$ and
# $\partial L/\partial h_{l-1} = \partial L/\partial a_l\,W_l^\top$.
# Every layer multiplies the gradient by $f'(a_l)$ and by $W_l^\top$ — that repeated product is the
# whole story of vanishing (and exploding) gradients.
#
# We initialise each layer with the standard gain for its activation (the values of
# `torch.nn.init.calculate_gain`): $W \sim \mathcal N(0, \text{gain}^2/\text{fan\_in})$ with gain 1 for
# sigmoid, 5/3 for tanh, √2 for the ReLU family. So each activation gets its best-known starting point.

# %%
GAIN = {"sigmoid": 1.0, "tanh": 5 / 3, "relu": np.sqrt(2), "gelu": np.sqrt(2), "swish": np.sqrt(2)}


def init_mlp(sizes, activation, rng):
    return [
        [rng.standard_normal((n_in, n_out)) * GAIN[activation] / np.sqrt(n_in), np.zeros(n_out)]
        for n_in, n_out in zip(sizes[:-1], sizes[1:])
    ]


def mlp_forward_backward(layers, activation, X, y):
    """Cross-entropy loss, its gradients [(dW, db), ...] and the pre-activations of every layer."""
    f, df = ACTIVATIONS[activation]
    hs, pre = [X], []
    for i, (W, b) in enumerate(layers):
        a = hs[-1] @ W + b  # (N, n_out)
        pre.append(a)
        hs.append(a if i == len(layers) - 1 else f(a))  # no activation on the logits
    z = hs[-1] - hs[-1].max(1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)  # (N, classes)
    loss = -np.log(p[np.arange(len(y)), y] + 1e-12).mean()
    da = p
    da[np.arange(len(y)), y] -= 1
    da /= len(y)
    grads = [None] * len(layers)
    for i in reversed(range(len(layers))):
        grads[i] = (hs[i].T @ da, da.sum(0))
        if i > 0:
            da = (da @ layers[i][0].T) * df(pre[i - 1])  # through W, then through f'
    return loss, grads, pre


# %% [markdown]
# ## Vanishing gradients in a deep sigmoid network
#
# Take a 20-layer MLP (width 64) at initialisation, push one batch of spiral points through it, and
# measure the size of the weight gradient $\lVert \partial L/\partial W_l\rVert$ in every layer.
#
# **What to look for:** with sigmoid, the gradient reaching the first layer is many orders of
# magnitude smaller than at the last layer (each layer multiplies by σ' ≤ 0.25), so the early layers
# barely learn. tanh, ReLU, GELU and Swish keep the gradient roughly constant with depth (their
# curves are flat). Compare slopes, not heights: the height depends on how big the initial loss
# gradient at the output happens to be.

# %%
X, y = make_spirals(512, seed=0)
X = X.astype(np.float64)
DEPTH = 20
flow = {}
for name in ACTIVATIONS:
    layers = init_mlp([2] + [64] * DEPTH + [2], name, np.random.default_rng(1))
    _, grads, _ = mlp_forward_backward(layers, name, X, y)
    flow[name] = np.array([np.linalg.norm(dW) for dW, _ in grads])

fig, ax = plt.subplots(figsize=(8, 4))
for name, norms in flow.items():
    ax.semilogy(np.arange(1, len(norms) + 1), norms, marker="o", ms=3, label=name)
ax.set(
    xlabel="layer (1 = next to the input)", ylabel="‖dL/dW‖", title=f"Gradient flow at init, {DEPTH} layers"
)
ax.legend()
plt.show()
for name, norms in flow.items():
    print(f"{name:8s} first-layer / last-layer gradient ratio: {norms[0] / norms[-1]:.1e}")

# %%
ratio = {name: flow[name][0] / flow[name][-1] for name in flow}
assert ratio["sigmoid"] < 1e-5, ratio  # vanished
assert ratio["relu"] > 1e-2 and ratio["tanh"] > ratio["sigmoid"] * 1e3, ratio

# %% [markdown]
# ## Dead ReLUs
#
# A ReLU unit whose pre-activation is negative for *every* input outputs zero and receives exactly
# zero gradient ($f'=0$): nothing will ever move it again. A big gradient step that pushes a unit's
# bias far negative kills it. We train the same one-hidden-layer ReLU network (256 units) with a
# moderate and a far-too-large learning rate and count the units that are dead on the whole training
# set.


# %%
def train(activation, sizes, lr, steps, seed=0, desc=None):
    rng = np.random.default_rng(seed)
    layers = init_mlp(sizes, activation, rng)
    losses = []
    for _ in tqdm(range(steps), desc=desc or activation, leave=False):
        idx = rng.integers(0, len(y), 128)  # a mini-batch of 128 points
        loss, grads, _ = mlp_forward_backward(layers, activation, X[idx], y[idx])
        for (W, b), (dW, db) in zip(layers, grads):
            W -= lr * dW
            b -= lr * db
        losses.append(loss)
    return layers, np.array(losses)


def dead_fraction(layers):
    pre = mlp_forward_backward(layers, "relu", X, y)[2][0]  # first hidden layer, (N, 256)
    return float((pre <= 0).all(axis=0).mean())


dead, trained = {}, {}
for lr in (0.1, 5.0):
    trained[lr], _ = train("relu", [2, 256, 2], lr=lr, steps=300, desc=f"relu lr={lr}")
    dead[lr] = dead_fraction(trained[lr])
    print(f"lr={lr}: {dead[lr]:.0%} of hidden ReLUs are dead")
layers0 = init_mlp([2, 256, 2], "relu", np.random.default_rng(0))
print(f"at initialisation: {dead_fraction(layers0):.0%} dead")

# %% [markdown]
# **What to look for:** at a sane learning rate (0.1) almost no unit dies. At the large one (5.0) most
# of the hidden layer is dead (we assert more than 40 %) — their columns are flat zero in the heatmap of pre-activation sign.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
for ax, (title, lay) in zip(axes, [("lr = 0.1", trained[0.1]), ("lr = 5.0", trained[5.0])]):
    active = (mlp_forward_backward(lay, "relu", X, y)[2][0][:100] > 0).astype(float)  # (100, 256)
    ax.imshow(active, aspect="auto", cmap="gray", interpolation="nearest")
    ax.set(
        title=f"{title}: {dead_fraction(lay):.0%} dead units (all-black columns)",
        xlabel="hidden unit",
        ylabel="input point",
    )
plt.show()

# %%
assert dead[0.1] < 0.05 and dead[5.0] > 0.4, dead

# %% [markdown]
# ## Same network, different activations
#
# Now train one deep network (8 hidden layers of 64 units) on the spirals with mini-batch SGD, once
# per activation, and compare the training loss. Use the dropdown to retrain with another activation
# and see its curve next to the others (in a plain script run, the cell trains the default choice).

# %%
SIZES = [2] + [64] * 8 + [2]
STEPS = 600 if QUICK else 4000
LR = 0.05
curves = {}


def run_one(activation):
    _, losses = train(activation, SIZES, lr=LR, steps=STEPS)
    curves[activation] = losses
    return losses


def smooth(v, k=50):
    return np.convolve(v, np.ones(k) / k, mode="valid")


def plot_curves():
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, name in enumerate(ACTIVATIONS):  # fixed order, so each activation keeps its colour
        if name in curves:
            ax.plot(
                smooth(curves[name]), color=f"C{i}", label=f"{name} (final {curves[name][-100:].mean():.3f})"
            )
    ax.set(
        xlabel="step", ylabel="training loss (moving average)", title="8-layer MLP on spirals", yscale="log"
    )
    ax.legend()
    plt.show()


dropdown = widgets.Dropdown(options=list(ACTIVATIONS), value="relu", description="activation")
button = widgets.Button(description="train")
output = widgets.Output()


def on_click(_):
    with output:
        output.clear_output(wait=True)
        run_one(dropdown.value)
        plot_curves()


button.on_click(on_click)
display(widgets.HBox([dropdown, button]), output)
run_one(dropdown.value)  # train the default choice once so the notebook also works headless

# %% [markdown]
# To compare all five side by side, train the rest too.
#
# **What to look for:** sigmoid's curve stays flat near log 2 ≈ 0.69 (chance): its gradients vanish
# before reaching the early layers. The ReLU family and tanh drive the loss down. The sudden jumps
# are plain SGD with a learning rate near the edge of stability in a deep net: a step overshoots,
# the loss spikes, training recovers (F04 looks at learning rates in detail).

# %%
for name in ACTIVATIONS:
    if name not in curves:
        run_one(name)
plot_curves()
final = {name: losses[-100:].mean() for name, losses in curves.items()}
print({k: round(float(v), 3) for k, v in final.items()})

# %% [markdown]
# ## Result
#
# In full mode (4000 steps) ReLU reaches a training loss below 0.15; in quick mode (600 steps)
# below 0.3. The deep sigmoid network stays above 0.6 (it barely leaves chance, log 2 ≈ 0.69) in both.

# %%
assert final["relu"] < (0.3 if QUICK else 0.15), final
assert final["sigmoid"] > 0.6, final
print("OK: ReLU trains the deep net, sigmoid's gradients vanish.")

# %% [markdown]
# ## Experiments to try
# - Make the network 3 layers deep instead of 8. Does sigmoid still fail?
# - Initialise every activation with gain 1. Which one now suffers the most at depth 20?
# - Add a *leaky* ReLU ($f'(x) = 0.01$ for $x<0$) to `ACTIVATIONS` and count its dead units at lr = 3.
# - Give the ReLU network a bias initialised at −1. How many units are dead before training starts?
# - Replace plain SGD with the Adam optimizer from F04. Does it rescue the deep sigmoid network?
