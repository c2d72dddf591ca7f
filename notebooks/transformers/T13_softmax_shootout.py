# %% [markdown]
# # T13 · Softmax shootout: softmax vs SSMax vs Softpick
#
# Attention turns each query's row of scores into weights with a softmax. Two recent papers say
# softmax has bad habits and swap it for something else:
#
# - **Scalable-Softmax (SSMax)** (Nakanishi, 2025, arXiv:2501.19399): as a query sees more keys, the
#   softmax weight of the one key that matters shrinks like 1/n ("attention fading"). SSMax
#   multiplies the scores by s·log(n) first, so the peak keeps its height at any length.
# - **Softpick** (Zuhri et al., 2025, arXiv:2504.20966): relu(eᶻ − 1) / Σ|eᶻ − 1|. A score ≤ 0
#   gets *exactly* zero weight and the weights need not sum to one, so a head can look at nothing
#   instead of parking its weight on a "sink" token.
#
# We write the three normalisers in a few lines each, check them against the library, look at how
# they behave as the number of keys grows, then train the same one-layer retriever with each at
# one length and test it on sequences up to eight times longer.
#
# ## What you'll learn
# - The three normalisers, written out, and what each one changes in the score → weight step.
# - Attention fading: the weight of the largest score as the number of keys n grows, and the
#   attention entropy as T grows, for random and for trained weights.
# - A trained comparison on key → value retrieval trained at 8 pairs and evaluated at 16–64 pairs:
#   which normaliser keeps its attention on the right key.
# - Softpick's exact zeros, counted in a trained model.

# %%
import math

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import bestiary
from bestiary.layers.attention_variants import (
    NormalisedAttention,
    ScalableSoftmax,
    Softmax,
    Softpick,
    softpick,
    ssmax,
)

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
torch.set_num_threads(1)  # tiny models: one thread is faster than two fighting on a shared CPU

# %% [markdown]
# ## 1. Three normalisers, written out
#
# Each takes a row of scores z (over the keys a query may see, `visible`) and returns weights.
#
# - **softmax**: e^{z_i} / Σ_j e^{z_j}. Subtracting the max first changes nothing but avoids overflow.
# - **SSMax**: softmax(s · log(n) · z), n = number of visible keys, s a learned scale per head
#   (0.43 at the start, so s·log n ≈ 1 at n ≈ 10: short rows start as plain softmax). Since
#   e^{s log(n) z} = n^{s z}, the numerator grows with n as fast as the denominator does.
# - **Softpick**: relu(e^{z_i} − 1) / (Σ_j |e^{z_j} − 1| + ε). Negative scores still count in the
#   denominator (through |·|, so they get gradient) but receive weight exactly 0.


# %%
def my_softmax(z: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    z = z.masked_fill(~visible, float("-inf"))
    e = torch.exp(z - z.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


def my_ssmax(z: torch.Tensor, visible: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    n = visible.sum(-1, keepdim=True).float()  # (Tq, 1): keys each query sees
    return my_softmax(s[:, None, None] * n.log() * z, visible)  # s per head: (H, 1, 1)


def my_softpick(z: torch.Tensor, visible: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    e = torch.where(visible, torch.exp(z) - 1, 0.0)  # hidden keys contribute nothing
    return e.relu() / (e.abs().sum(-1, keepdim=True) + eps)


H, T = 4, 12
z = 2 * torch.randn(3, H, T, T)
visible = torch.ones(T, T, dtype=torch.bool).tril()  # causal: query i sees keys 0..i
s = torch.rand(H) + 0.2
checks = {
    "softmax": (my_softmax(z, visible), Softmax()(z, visible)),
    "ssmax": (my_ssmax(z, visible, s), ssmax(z, visible, s)),
    "softpick": (my_softpick(z, visible), softpick(z, visible)),
}
for name, (ours, library) in checks.items():
    err = (ours - library).abs().max().item()
    print(f"{name:9s} max |ours - library| = {err:.1e}")
    assert err < 1e-6
row_sums = my_softpick(z, visible).sum(-1)
print(f"softpick row sums range over [{row_sums.min():.2f}, {row_sums.max():.2f}] (softmax: exactly 1)")
assert row_sums.max() <= 1 + 1e-6

# %% [markdown]
# ## 2. Attention fading: one key that stands out among n
#
# One key has score Δ = 3, the other n − 1 keys have score 0. Softmax gives the standout key
# e^Δ / (e^Δ + n − 1): constant numerator, growing denominator, so it fades like 1/n. SSMax gives
# n^{sΔ} / (n^{sΔ} + n − 1): with sΔ > 1 (here s = 0.43, sΔ = 1.29) the numerator wins and the weight
# *rises* towards 1. Softpick with the others at 0 gives the standout key everything (e⁰ − 1 = 0:
# the others vanish from the denominator); with the others at a small positive score (0.5) it fades
# like softmax, because then every key is a competitor.
#
# **What to look for:** on a log x-axis, the softmax curve falls from near 1 to a few percent by
# n = 4096; SSMax, after a shallow dip at small n, climbs towards 1; Softpick is flat at 1 when the other scores are 0 and falls
# like softmax when they are 0.5.

# %%
ns = torch.unique(torch.logspace(0.31, math.log10(4096), 40).round().long())
DELTA, S0 = 3.0, 0.43
curves = {"softmax": [], "SSMax (s = 0.43)": [], "Softpick, others at 0": [], "Softpick, others at 0.5": []}
for n in ns.tolist():
    row = torch.zeros(1, 1, 1, n)
    row[..., 0] = DELTA
    vis = torch.ones(1, n, dtype=torch.bool)
    curves["softmax"].append(my_softmax(row, vis)[..., 0].item())
    curves["SSMax (s = 0.43)"].append(my_ssmax(row, vis, torch.tensor([S0]))[..., 0].item())
    curves["Softpick, others at 0"].append(my_softpick(row, vis)[..., 0].item())
    curves["Softpick, others at 0.5"].append(my_softpick(row + 0.5, vis)[..., 0].item())
fig, ax = plt.subplots(figsize=(7, 4))
for name, ys in curves.items():
    ax.plot(ns, ys, label=name, ls="--" if "0.5" in name else "-")
ax.set(xscale="log", xlabel="number of keys n", ylabel="weight on the standout key", ylim=(0, 1.05))
ax.set_title(f"one key with score {DELTA:g}, the others at 0 (or 0.5)")
ax.legend()
plt.tight_layout()
plt.show()
sm, ss = curves["softmax"], curves["SSMax (s = 0.43)"]
print(f"n = {ns[1]} -> {ns[-1]}: softmax {sm[1]:.2f} -> {sm[-1]:.3f}, SSMax {ss[1]:.2f} -> {ss[-1]:.2f}")
assert sm[-1] < 0.01 and ss[-1] > ss[1] and ss[-1] > 0.8

# %% [markdown]
# ## 3. Attention entropy as T grows (random scores)
#
# The entropy −Σ p log p of a query's weights says how many keys it effectively spreads over
# (e^entropy keys). With i.i.d. scores z ~ N(0, σ²), softmax's entropy is about log T − σ²/2: it
# grows with log T forever, the attention gets blurrier the longer the context. SSMax scales the
# scores by s·log T, so the σ²/2 term grows like (log T)²: the entropy rises, then flattens and
# falls. For Softpick we take the entropy of the weights renormalised to sum to one.
#
# **What to look for:** softmax's curve is a straight line on the log-T axis, just below the
# uniform line log T; SSMax's bends over and ends well below it; Softpick's lies below softmax's
# (about half the keys get exactly zero, so it spreads over fewer).


# %%
def entropy(w: torch.Tensor) -> torch.Tensor:
    p = w / w.sum(-1, keepdim=True)
    return -(p * torch.log(p.clamp_min(1e-30))).sum(-1)


Ts = [16, 64, 256, 1024, 4096] if QUICK else [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
SIGMA = 1.0
random_entropy = {"softmax": [], "SSMax": [], "Softpick": []}
g = torch.Generator().manual_seed(0)
for Tn in Ts:
    zz = SIGMA * torch.randn(1, 1, 64, Tn, generator=g)  # 64 queries, each seeing all Tn keys
    vis = torch.ones(64, Tn, dtype=torch.bool)
    random_entropy["softmax"].append(entropy(my_softmax(zz, vis)).mean().item())
    random_entropy["SSMax"].append(entropy(my_ssmax(zz, vis, torch.tensor([S0]))).mean().item())
    random_entropy["Softpick"].append(entropy(my_softpick(zz, vis)).mean().item())
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(Ts, [math.log(t) for t in Ts], "k:", label="uniform (log T)")
for name, ys in random_entropy.items():
    ax.plot(Ts, ys, "o-", label=name)
ax.set(
    xscale="log", xlabel="keys T", ylabel="attention entropy (nats)", title=f"random scores, σ = {SIGMA:g}"
)
ax.legend()
plt.tight_layout()
plt.show()
growth = {name: ys[-1] - ys[0] for name, ys in random_entropy.items()}
print(
    f"entropy growth from T = {Ts[0]} to {Ts[-1]}: " + ", ".join(f"{k} {v:+.2f}" for k, v in growth.items())
)
assert growth["SSMax"] < 0.5 * growth["softmax"]

# %% [markdown]
# ## 4. A trained comparison: key → value retrieval at 8× the training length
#
# Each example is n (key, value) pairs with distinct keys, then a query key; the answer is the value
# stored with that key. One token per pair (key embedding + value embedding), one attention layer
# (the library's `NormalisedAttention`, 2 heads, its normaliser swapped), a linear read-out at the
# query. No positions are needed: this is pure content lookup, and the only thing that changes with
# n is how many distractors the normaliser must suppress.
#
# We train at n = 8 and test at n = 8, 16, 32, 64. A small wrapper keeps each normaliser's last
# weights so we can look at them. Quick mode: 100 steps at learning rate 10⁻²; full mode: 600
# steps at 3·10⁻³ (larger batches).

# %%
N_KEYS, N_VALUES, D, HEADS, L = 128, 16, 32, 2, 8
EVAL_NS = [L, 2 * L, 4 * L, 8 * L]
STEPS, LR, BATCH = (100, 1e-2, 64) if QUICK else (600, 3e-3, 128)


class Recording(nn.Module):
    """A normaliser that keeps its last weights (B, H, Tq, Tk) for us to look at."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner, self.weights = inner, None

    def forward(self, scores: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        w = self.inner(scores, visible)
        self.weights = w.detach()
        return w


class Retriever(nn.Module):
    def __init__(self, normaliser: nn.Module):
        super().__init__()
        self.key, self.value = nn.Embedding(N_KEYS, D), nn.Embedding(N_VALUES, D)
        self.norm = Recording(normaliser)
        self.attn = NormalisedAttention(D, HEADS, self.norm, bias=False)
        self.head = nn.Linear(D, N_VALUES)

    def forward(self, keys: torch.Tensor, values: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.key(keys) + self.value(values), self.key(query)[:, None]], dim=1)  # (B, n+1, D)
        return self.head(self.attn(x)[:, -1])  # the query token's output -> value logits


def retrieval_batch(batch: int, n: int, gen: torch.Generator):
    keys = torch.rand(batch, N_KEYS, generator=gen).argsort(-1)[:, :n]  # n distinct keys per example
    values = torch.randint(0, N_VALUES, (batch, n), generator=gen)
    pick = torch.randint(0, n, (batch,), generator=gen)
    rows = torch.arange(batch)
    return keys, values, keys[rows, pick], values[rows, pick], pick


NORMALISERS = {"softmax": Softmax, "SSMax": lambda: ScalableSoftmax(HEADS), "Softpick": Softpick}
models, curves_train = {}, {}
for name, make in NORMALISERS.items():
    bestiary.seed_everything(0)
    model = Retriever(make()).to(DEVICE)
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(0)  # the same batches for every normaliser
    losses = []
    for _ in tqdm(range(STEPS), desc=name, leave=False):
        keys, values, query, target, _ = retrieval_batch(BATCH, L, gen)
        loss = F.cross_entropy(model(keys, values, query), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    models[name], curves_train[name] = model.eval(), losses


@torch.no_grad()
def evaluate(model: Retriever, n: int, n_examples: int = 1024) -> dict[str, float]:
    keys, values, query, target, pick = retrieval_batch(n_examples, n, torch.Generator().manual_seed(1))
    logits = model(keys, values, query)
    w = model.norm.weights[:, :, -1, :n]  # (B, H, n): the query's weights over the pairs
    on_key = w[torch.arange(n_examples), :, pick].amax(-1)  # the best head's weight on the right pair
    return {
        "loss": F.cross_entropy(logits, target).item(),
        "accuracy": (logits.argmax(-1) == target).float().mean().item(),
        "weight": on_key.mean().item(),
        "entropy": entropy(w).mean().item(),
        "zeros": (model.norm.weights[:, :, -1] == 0).float().mean().item(),  # all n+1 keys are visible
    }


results = {name: {n: evaluate(m, n) for n in EVAL_NS} for name, m in models.items()}
print(f"{'':9s}" + "".join(f"{'n=' + str(n):>24s}" for n in EVAL_NS))
for name, row in results.items():
    cells = "".join(
        f"  acc {r['accuracy']:.2f} loss {r['loss']:.2f} w {r['weight']:.2f}" for r in row.values()
    )
    print(f"{name:9s}{cells}")

# %% [markdown]
# **What to look for:** left, the weight the best head puts on the right pair: all three start
# near the same height at the training length n = 8; as n grows softmax's and Softpick's fall, SSMax
# holds its level (its learned s·log n sharpens the row as it lengthens). Middle, the entropy of
# the trained attention: softmax's and Softpick's climb with n, SSMax's stays far lower. Right, the
# test loss rises for all three past the training length (the read-out only ever saw mixtures of 8
# pairs, and the values of the other pairs leak in for every normaliser): the loss is not where
# SSMax's advantage is cleanest, and we do not rank on it.

# %%
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
for name, row in results.items():
    axes[0].plot(EVAL_NS, [row[n]["weight"] for n in EVAL_NS], "o-", label=name)
    axes[1].plot(EVAL_NS, [row[n]["entropy"] for n in EVAL_NS], "o-", label=name)
    axes[2].plot(EVAL_NS, [row[n]["loss"] for n in EVAL_NS], "o-", label=name)
for ax, ylabel in zip(
    axes, ["weight on the right pair (best head)", "attention entropy (nats)", "test loss"]
):
    ax.axvline(L, color="gray", ls=":", label="training length")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="pairs n", ylabel=ylabel)
    ax.set_xticks(EVAL_NS, [str(n) for n in EVAL_NS])
    ax.minorticks_off()
axes[0].set_ylim(0, 1.05)
axes[0].legend()
fig.suptitle("trained at n = 8, tested longer")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### The claim
#
# Length generalisation of the *attention itself*: the fraction of its training-length weight on
# the right pair that each model keeps at 8× the length. SSMax must keep more than softmax,
# by at least 0.1 in both modes; and at 8× length its trained attention entropy must be lower
# than softmax's. (Accuracy is reported but not asserted: a linear read-out still finds the right
# value from a diluted mixture surprisingly often, so accuracy moves less than the weight does.)

# %%
kept = {name: row[8 * L]["weight"] / row[L]["weight"] for name, row in results.items()}
print(
    f"weight kept at n = {8 * L} (relative to n = {L}): " + ", ".join(f"{k} {v:.2f}" for k, v in kept.items())
)
print(f"entropy at n = {8 * L}: " + ", ".join(f"{k} {r[8 * L]['entropy']:.2f}" for k, r in results.items()))
assert kept["SSMax"] > kept["softmax"] + 0.1
assert results["SSMax"][8 * L]["entropy"] < results["softmax"][8 * L]["entropy"]

# %% [markdown]
# ## 5. Softpick's exact zeros
#
# A softmax weight is never zero (e^z > 0 for any finite score); a Softpick weight is exactly zero
# for every score ≤ 0. On the trained retrievers at n = 64, count the fraction of the query's
# weights that are exactly 0.0 in float32.
#
# **What to look for:** one query's weights over its 64 pairs, per head: softmax's are all
# positive (a low floor under the peak), Softpick's show the peak and a row of exact zeros (drawn as
# crosses on the axis).

# %%
zeros = {name: row[8 * L]["zeros"] for name, row in results.items()}
print(
    f"fraction of exactly-zero weights at n = {8 * L}: " + ", ".join(f"{k} {v:.1%}" for k, v in zeros.items())
)
with torch.no_grad():
    keys, values, query, target, pick = retrieval_batch(1, 8 * L, torch.Generator().manual_seed(5))
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.5), sharey=True)
    for ax, name in zip(axes, ["softmax", "Softpick"]):
        models[name](keys, values, query)
        w = models[name].norm.weights[0, :, -1, : 8 * L]  # (H, n)
        for h in range(HEADS):
            ax.plot(w[h], ".-", label=f"head {h}", alpha=0.8)
            exact = (w[h] == 0).nonzero().flatten()
            ax.plot(exact, torch.zeros(len(exact)), "x", color=f"C{h}")
        ax.axvline(pick.item(), color="gray", ls=":", label="the right pair")
        ax.set(title=f"{name}: {(w == 0).float().mean():.0%} exact zeros", xlabel="pair index")
        ax.set_yscale("symlog", linthresh=1e-6)
    axes[0].set_ylabel("weight (symlog)")
    axes[0].legend()
    plt.tight_layout()
    plt.show()
assert zeros["Softpick"] > 0.1 and zeros["softmax"] == 0.0

# %% [markdown]
# ## Result
#
# - The three normalisers written out match the library's to 10⁻⁶.
# - With one standout score, softmax's peak weight falls below 1% by n = 4096 while SSMax's rises
#   (asserted); SSMax's entropy on random scores grows less than half as much as softmax's from
#   T = 16 to 4096 (asserted).
# - Trained at 8 pairs and tested at 64, SSMax keeps at least 0.1 more of its weight on the right
#   pair (relative to its training-length weight) than softmax does, and its attention is sharper
#   (lower entropy), in quick (100 steps) and full (600 steps) mode; the printed numbers above are
#   this run's.
# - Softpick puts exact zeros on more than 10% of a trained query's weights; softmax on none.
#
# Softpick is not a length-generalisation fix: it fades like softmax once the distractors' scores are
# positive. Its point is elsewhere (no attention sink, sparse weights, a head that can abstain);
# see its model card, `bestiary.card("softpick")`.
#
# ## Experiments to try
# - Freeze SSMax's scale at s = 1/log(9) (exactly plain softmax at the training length, 8 pairs + the
#   query) and retrain: is the gain from the log n factor or from the learned scale?
# - Add the sigmoid normaliser (`bestiary.layers.attention_variants.SigmoidWeights(L)`) to
#   `NORMALISERS`: its weights do not depend on n at all. How does it fade?
# - Make the distractors harder: give half the pairs a key that shares an embedding with the query
#   key plus noise. Which normaliser degrades first?
# - Train the library's language models (`bestiary.build_lm("ssmax", ...)`, `"softpick"`) on
#   Shakespeare at block 64 and evaluate at 256: does the retrieval result carry over to text?
