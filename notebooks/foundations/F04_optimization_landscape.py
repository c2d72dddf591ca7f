# %% [markdown]
# # F04 · The optimization landscape
#
# Training a network means walking downhill on a loss surface in millions of dimensions. We can't
# picture that, but two-dimensional test functions show the same difficulties in miniature: long
# curved valleys, saddle points, directions of very different steepness. In this notebook we write
# four optimizers from scratch — SGD, momentum, RMSprop and Adam — and watch their paths.
#
# ## What you'll learn
# - the update rule of SGD, momentum (heavy ball), RMSprop and Adam, each in a few lines of NumPy;
# - why plain gradient descent crawls along a curved valley (Rosenbrock) and why momentum and
#   per-coordinate step sizes help;
# - how a saddle point slows gradient descent down, and how the optimizers escape it;
# - what "learning rate too low / right / too high" looks like, and where the stability limit
#   $\text{lr} < 2/\lambda_{\max}$ comes from.

# %%
import matplotlib.pyplot as plt
import numpy as np
from IPython.display import HTML, display
from matplotlib import animation

import bestiary

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: this notebook is pure NumPy
bestiary.seed_everything(0)

# %% [markdown]
# ## Two test surfaces
#
# - **Rosenbrock** $f(x, y) = (1-x)^2 + 100\,(y - x^2)^2$: a narrow, curved, almost flat valley
#   with the minimum at $(1, 1)$. Across the valley the surface is ~100× steeper than along it.
# - **A saddle** $f(x, y) = x^2 - y^2 + y^4/4$: at the origin the gradient is zero, but it is a
#   minimum along $x$ and a maximum along $y$. The true minima are at $(0, \pm\sqrt2)$, $f = -1$.
#
# We write each gradient by hand and check it with finite differences.


# %%
def rosenbrock(p):
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def rosenbrock_grad(p):
    x, y = p
    return np.array([-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)])


def saddle(p):
    x, y = p[..., 0], p[..., 1]
    return x**2 - y**2 + y**4 / 4


def saddle_grad(p):
    x, y = p
    return np.array([2 * x, -2 * y + y**3])


for f, grad in [(rosenbrock, rosenbrock_grad), (saddle, saddle_grad)]:
    p = np.array([-0.7, 1.3])
    numeric = np.array([(f(p + e) - f(p - e)) / 2e-6 for e in np.eye(2) * 1e-6])
    assert np.allclose(numeric, grad(p), rtol=1e-6), (f.__name__, numeric, grad(p))
print("hand-written gradients agree with finite differences")

# %% [markdown]
# ## Four optimizers
#
# With gradient $g_t$ at step $t$ and learning rate $\eta$:
#
# | optimizer | update |
# |---|---|
# | SGD | $\theta \leftarrow \theta - \eta\, g_t$ |
# | momentum | $v \leftarrow \beta v + g_t$, $\theta \leftarrow \theta - \eta\, v$ (a ball that keeps its speed) |
# | RMSprop | $s \leftarrow \beta_2 s + (1-\beta_2) g_t^2$, $\theta \leftarrow \theta - \eta\, g_t / (\sqrt{s} + \epsilon)$ (each coordinate gets its own step size) |
# | Adam | $m \leftarrow \beta_1 m + (1-\beta_1) g_t$, $s \leftarrow \beta_2 s + (1-\beta_2) g_t^2$, $\hat m = m/(1-\beta_1^t)$, $\hat s = s/(1-\beta_2^t)$, $\theta \leftarrow \theta - \eta\, \hat m / (\sqrt{\hat s} + \epsilon)$ |
#
# Adam is momentum and RMSprop together; the $1-\beta^t$ factors undo the bias of starting $m$ and
# $s$ at zero. (`bestiary.scratch.optim` has the same rules for arrays of parameters, used in later
# notebooks.)


# %%
def optimize(name, grad, start, lr, steps, beta1=0.9, beta2=0.999, eps=1e-8):
    """Run one optimizer from `start`; returns the path, shape (steps + 1, 2)."""
    theta = np.array(start, dtype=float)
    m = np.zeros(2)  # momentum / first moment
    s = np.zeros(2)  # running mean of squared gradients
    path = [theta.copy()]
    for t in range(1, steps + 1):
        g = grad(theta)
        if name == "SGD":
            theta -= lr * g
        elif name == "momentum":
            m = beta1 * m + g
            theta -= lr * m
        elif name == "RMSprop":
            s = beta2 * s + (1 - beta2) * g**2
            theta -= lr * g / (np.sqrt(s) + eps)
        elif name == "Adam":
            m = beta1 * m + (1 - beta1) * g
            s = beta2 * s + (1 - beta2) * g**2
            m_hat, s_hat = m / (1 - beta1**t), s / (1 - beta2**t)
            theta -= lr * m_hat / (np.sqrt(s_hat) + eps)
        else:
            raise ValueError(f"unknown optimizer {name!r}")
        path.append(theta.copy())
    return np.array(path)


# Learning rates picked by hand for Rosenbrock: each is about the largest that stays stable.
SETTINGS = {
    "SGD": dict(lr=1e-3),
    "momentum": dict(lr=5e-4),
    "RMSprop": dict(lr=3e-3, beta2=0.9),
    "Adam": dict(lr=0.05),
}
STEPS = 2000
START = (-1.5, 2.0)
paths = {name: optimize(name, rosenbrock_grad, START, steps=STEPS, **hp) for name, hp in SETTINGS.items()}
for name, path in paths.items():
    print(f"{name:9s} after {STEPS} steps: f = {rosenbrock(path[-1]):.2e} at {np.round(path[-1], 3)}")


# %% [markdown]
# **What to look for:** all four first slide down into the curved valley (the steep direction), then
# must travel along its flat floor to $(1,1)$ (the star). Top row, one panel per optimizer: the dots
# mark every 100th step; where they bunch up, the optimizer crawls. SGD is still crawling along the
# floor after 2000 steps; momentum builds up speed along the floor; Adam takes steps of roughly
# constant size whatever the steepness, so it moves along the floor quickly.
# Bottom row, the saddle: every optimizer starts almost exactly on the ridge $y \approx 0$. SGD and
# momentum roll straight into the saddle point (×) and only then, slowly, off it towards a minimum;
# RMSprop and Adam rescale the tiny $y$-gradient to a full-size step and cut the corner at once.


# %%
def contour(ax, f, xlim, ylim, levels):
    xx, yy = np.meshgrid(np.linspace(*xlim, 300), np.linspace(*ylim, 300))
    ax.contour(xx, yy, f(np.stack([xx, yy], -1)), levels=levels, cmap="viridis", linewidths=0.7)
    ax.set(xlim=xlim, ylim=ylim, xlabel="x", ylabel="y")


SADDLE_START = (1.5, 1e-4)
saddle_settings = {
    "SGD": dict(lr=0.05),
    "momentum": dict(lr=0.01),
    "RMSprop": dict(lr=0.02),
    "Adam": dict(lr=0.05),
}
saddle_paths = {
    n: optimize(n, saddle_grad, SADDLE_START, steps=150, **hp) for n, hp in saddle_settings.items()
}

fig, axes = plt.subplots(2, 4, figsize=(16, 8))
for col, name in enumerate(SETTINGS):
    ax = axes[0, col]
    contour(ax, rosenbrock, (-2, 2), (-1, 3), np.logspace(-1, 3.5, 20))
    path = paths[name]
    ax.plot(path[:, 0], path[:, 1], "-", lw=1, color=f"C{col}")
    ax.plot(path[::100, 0], path[::100, 1], "o", ms=4, color=f"C{col}")  # a dot every 100 steps
    ax.plot(1, 1, "r*", ms=14)
    ax.set_title(f"{name}: f = {rosenbrock(path[-1]):.0e} after {STEPS}")
    ax = axes[1, col]
    contour(ax, saddle, (-2, 2), (-2, 2), np.linspace(-1, 4, 21))
    path = saddle_paths[name]
    ax.plot(path[:, 0], path[:, 1], ".-", ms=3, lw=1, color=f"C{col}")
    ax.plot([0, 0], [-np.sqrt(2), np.sqrt(2)], "r*", ms=12)
    ax.plot(0, 0, "kx", ms=10)
    ax.set_title(f"{name} on the saddle, 150 steps")
axes[0, 0].text(-1.9, 2.7, "Rosenbrock, dot = 100 steps", fontsize=9)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The same paths, animated
#
# **What to look for:** the order in which the optimizers reach the valley floor and then the
# minimum. Use the player controls to step frame by frame. (Quick mode renders fewer frames.)

# %%
N_FRAMES = 25 if QUICK else 80
frame_steps = np.unique(np.geomspace(1, STEPS, N_FRAMES).astype(int))  # log-spaced: early steps move most
fig, ax = plt.subplots(figsize=(6, 5))
contour(ax, rosenbrock, (-2, 2), (-1, 3), np.logspace(-1, 3.5, 20))
ax.plot(1, 1, "r*", ms=15)
lines = {name: ax.plot([], [], ".-", ms=2, lw=1, label=name)[0] for name in paths}
heads = {name: ax.plot([], [], "o", color=lines[name].get_color())[0] for name in paths}
title = ax.set_title("")
ax.legend(loc="upper right")


def draw(i):
    k = frame_steps[i]
    for name, path in paths.items():
        lines[name].set_data(path[: k + 1, 0], path[: k + 1, 1])
        heads[name].set_data([path[k, 0]], [path[k, 1]])
    title.set_text(f"Rosenbrock, step {k}")
    return [*lines.values(), *heads.values(), title]


anim = animation.FuncAnimation(fig, draw, frames=len(frame_steps), interval=150, blit=True)
display(HTML(anim.to_jshtml()))
plt.close(fig)  # the animation above replaces the static figure

# %% [markdown]
# ## Learning rate: too low, about right, too high
#
# On a quadratic bowl $f = \tfrac12(x^2 + 10\,y^2)$ gradient descent multiplies each coordinate by
# $(1 - \eta\lambda)$ per step, where $\lambda \in \{1, 10\}$ is the curvature along it. It converges only
# if $|1-\eta\lambda| < 1$ for both, i.e. $\eta < 2/\lambda_{\max} = 0.2$.
#
# **What to look for:** η = 0.01 creeps (after 60 steps it is still far away); η = 0.15 zig-zags
# across the steep direction but converges quickly; η = 0.21 is just past the limit: the zig-zag grows
# and the loss explodes.


# %%
def bowl(p):
    return 0.5 * (p[..., 0] ** 2 + 10 * p[..., 1] ** 2)


def bowl_grad(p):
    return np.array([p[0], 10 * p[1]])


lr_paths = {lr: optimize("SGD", bowl_grad, (-1.8, 0.6), lr=lr, steps=60) for lr in (0.01, 0.15, 0.21)}
labels = {0.01: "too low", 0.15: "about right", 0.21: "too high"}
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.5))
contour(ax1, bowl, (-2.2, 2.2), (-1.2, 1.2), np.logspace(-2, 1.5, 15))
for lr, path in lr_paths.items():
    shown = path[:12] if lr > 0.2 else path  # the diverging path leaves the plot after a few steps
    ax1.plot(shown[:, 0], shown[:, 1], ".-", ms=3, lw=1, label=f"η = {lr} ({labels[lr]})")
    ax2.semilogy(bowl(path), label=f"η = {lr} ({labels[lr]})")
ax1.set_title("SGD paths on ½(x² + 10y²)")
ax1.legend()
ax2.set(title="loss per step", xlabel="step", ylabel="f")
ax2.legend()
plt.show()
final_bowl = {lr: bowl(path[-1]) for lr, path in lr_paths.items()}
print({lr: f"{v:.1e}" for lr, v in final_bowl.items()})

# %% [markdown]
# ## Convergence comparison on Rosenbrock
#
# **What to look for:** the gap to the minimum on a log scale. Adam's loss keeps falling
# geometrically to ~1e-12; momentum is second; RMSprop and SGD are still far above after 2000 steps.
# (RMSprop divides by the recent gradient size, so its steps stay ~η long and it jitters across the
# valley floor instead of settling; Adam's averaged numerator $\hat m$ cancels that jitter.)

# %%
fig, ax = plt.subplots(figsize=(8, 4))
for name, path in paths.items():
    ax.semilogy(rosenbrock(path) + 1e-16, label=name)
ax.set(xlabel="step", ylabel="f(x, y) − f*", title="Rosenbrock: loss per step")
ax.legend()
plt.show()
final = {name: float(rosenbrock(path[-1])) for name, path in paths.items()}

# %% [markdown]
# ## Result
#
# Everything here is deterministic and cheap, so full and quick mode assert the same thresholds
# (quick mode only renders fewer animation frames): after 2000 steps on Rosenbrock Adam is below
# $10^{-6}$ and momentum below $10^{-2}$, both better than plain SGD; on the bowl, η = 0.21 diverges
# (loss larger than at the start) while η = 0.15 converges below $10^{-6}$ and η = 0.01 is still above
# $10^{-2}$.

# %%
assert final["Adam"] < 1e-6 and final["momentum"] < 1e-2, final
assert final["SGD"] > 10 * final["momentum"] and final["SGD"] > 10 * final["Adam"], final
assert final_bowl[0.21] > bowl(lr_paths[0.21][0]), final_bowl
assert final_bowl[0.15] < 1e-6 < 1e-2 < final_bowl[0.01], final_bowl
print("OK:", {k: f"{v:.1e}" for k, v in final.items()})

# %% [markdown]
# ## Experiments to try
# - Give SGD a learning rate of 2e-3 on Rosenbrock. What happens at the start, where the valley
#   walls are steepest?
# - Set Adam's `beta1=0` (no momentum). Is that RMSprop with bias correction?
# - Move the saddle start to `(1.5, 0.0)` exactly. Which optimizers can ever leave the ridge, and why?
# - Add Nesterov momentum: evaluate the gradient at `theta - lr * beta1 * m` instead of `theta`.
# - Find the largest stable SGD learning rate for $\tfrac12(x^2 + 100y^2)$ and check it against $2/\lambda_{\max}$.
