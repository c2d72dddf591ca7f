# %% [markdown]
# # F09 · Attention from scratch
#
# An RNN (F07, F08) reads a sequence left to right and must squeeze everything it has seen into one
# fixed-size hidden state. *Attention* drops that constraint: every position may look directly at
# every other position and take a weighted average of what it finds there, with weights computed from
# content (Bahdanau et al., 2014; in its scaled dot-product form, Vaswani et al., *Attention Is All You
# Need*, 2017, arXiv:1706.03762). This notebook builds it in a few lines of NumPy.
#
# ## What you'll learn
# - scaled dot-product attention $\operatorname{softmax}(QK^\top/\sqrt{d})\,V$, checked against PyTorch;
# - the query / key / value picture: a soft dictionary lookup;
# - why the scores are divided by $\sqrt d$;
# - how to read attention heatmaps, and how a causal mask stops a position from seeing the future;
# - what a *trained* attention head looks at: two tiny models learn to reverse and to delay a
#   sequence, and their maps show exactly where each output reads from;
# - the RNN's bottleneck, measured: how much of an early token survives in an RNN's final state,
#   versus what attention can retrieve.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import bestiary
from bestiary.scratch import Adam, Embedding, Linear, SingleHeadAttention, cross_entropy
from bestiary.scratch import scaled_dot_product_attention as scratch_sdpa

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: everything here is NumPy (torch is the oracle)
bestiary.seed_everything(0)
rng = np.random.default_rng(0)

# %% [markdown]
# ## Scaled dot-product attention
#
# Given queries $Q \in \mathbb R^{T_q\times d}$, keys $K \in \mathbb R^{T_k\times d}$ and values
# $V \in \mathbb R^{T_k\times d_v}$:
#
# $$S = \frac{QK^\top}{\sqrt d}\;(T_q\times T_k),\qquad A = \operatorname{softmax}_{\text{rows}}(S),\qquad \text{out} = AV\;(T_q\times d_v).$$
#
# Row $i$ of $A$ is a probability distribution over the keys: how much query $i$ takes from each
# value. A *mask* sets forbidden scores to $-\infty$ before the softmax, so they get weight exactly 0.


# %%
def softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))  # shift for numerical safety; softmax is unchanged
    return e / e.sum(axis=axis, keepdims=True)


def attention(Q, K, V, mask=None):
    """Q (..., Tq, d), K (..., Tk, d), V (..., Tk, dv); mask True = may attend. Returns out, weights."""
    scores = Q @ K.swapaxes(-1, -2) / np.sqrt(Q.shape[-1])  # (..., Tq, Tk)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = softmax(scores)  # (..., Tq, Tk), rows sum to 1
    return weights @ V, weights  # (..., Tq, dv)


Q, K, V = rng.standard_normal((2, 5, 16)), rng.standard_normal((2, 7, 16)), rng.standard_normal((2, 7, 3))
mask = rng.random((5, 7)) < 0.7
mask[:, 0] = True  # every query may see at least one key
ours, _ = attention(Q, K, V, mask)
ref = torch.nn.functional.scaled_dot_product_attention(
    *(torch.tensor(a) for a in (Q, K, V)), attn_mask=torch.tensor(mask)
)
assert np.allclose(ours, ref.numpy(), atol=1e-12)
assert np.allclose(ours, scratch_sdpa(Q, K, V, mask=mask).data, atol=1e-12)  # the library version agrees too
print("matches torch.nn.functional.scaled_dot_product_attention and bestiary.scratch")

# %% [markdown]
# ## Queries, keys and values: a soft dictionary
#
# A Python dict returns the value whose key *equals* the query. Attention returns a blend of all
# values, weighted by how well each key *matches* the query. Below, six "animal" keys (random
# vectors) hold one number each as value. A query that is a noisy copy of the key for `cat` returns
# almost exactly cat's value; a query halfway between `cat` and `dog` returns a blend.

# %%
animals = ["cat", "dog", "owl", "eel", "bat", "yak"]
d = 32
keys = rng.standard_normal((6, d))
keys *= np.sqrt(d) / np.linalg.norm(keys, axis=1, keepdims=True)  # equal lengths: only direction matters
values = np.arange(6, dtype=float)[:, None] * 10  # cat=0, dog=10, owl=20, ...
queries = {
    "noisy cat": keys[0] + 0.3 * rng.standard_normal(d),
    "cat + dog": (keys[0] + keys[1]) / np.sqrt(2),
    "random": rng.standard_normal(d),
}
# Scaling a query up (by a "temperature" below 1) would make the lookup sharper, closer to a hard dict.
lookup = {name: attention(q[None], keys, values) for name, q in queries.items()}
for name, (out, w) in lookup.items():
    print(f"{name:10s} -> value {out[0, 0]:5.1f}   weights {np.round(w[0], 2)}")

# %% [markdown]
# **What to look for:** the noisy `cat` query puts nearly all its weight on `cat`; `cat + dog` splits
# it between the two (and returns a value between 0 and 10); a random query spreads its weight and
# returns a meaningless average.

# %%
fig, ax = plt.subplots(figsize=(7, 2.6))
im = ax.imshow(np.concatenate([w for _, w in lookup.values()]), cmap="Blues", vmin=0, vmax=1)
ax.set_xticks(range(6), animals)
ax.set_yticks(range(len(lookup)), list(lookup))
ax.set(xlabel="key", title="attention weights of three queries")
plt.colorbar(im)
plt.show()

# %% [markdown]
# ## Why divide by $\sqrt d$?
#
# If the entries of $q$ and $k$ are independent with variance 1, $q\cdot k$ is a sum of $d$ such
# products: its variance is $d$. With $d = 512$ the raw scores spread over ±50, and the softmax puts
# almost all weight on one key — attention becomes a hard argmax and its gradients vanish. Dividing by
# $\sqrt d$ brings the variance back to 1 for any $d$.
#
# **What to look for:** the entropy of the attention weights (high = spread out, $\log 64 \approx 4.16$
# for uniform). Unscaled, it collapses towards 0 as $d$ grows; scaled, it stays put.

# %%
dims = [4, 16, 64, 256, 1024]
entropy = {"scaled by 1/√d": [], "unscaled": []}
for dim in dims:
    q, k = rng.standard_normal((200, dim)), rng.standard_normal((64, dim))
    for name, s in [("scaled by 1/√d", q @ k.T / np.sqrt(dim)), ("unscaled", q @ k.T)]:
        w = softmax(s)
        entropy[name].append(float(-(w * np.log(w + 1e-30)).sum(-1).mean()))
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, e in entropy.items():
    ax.semilogx(dims, e, "o-", label=name)
ax.axhline(np.log(64), ls="--", color="gray", label="uniform over 64 keys")
ax.set(xlabel="dimension d", ylabel="entropy of attention weights (nats)", title="Softmax saturation")
ax.legend()
plt.show()

# %% [markdown]
# ## Self-attention on a sentence, and the causal mask
#
# In *self*-attention, queries, keys and values all come from the same sequence:
# $Q = XW_Q$, $K = XW_K$, $V = XW_V$. To see what a mask does, before training anything, we pick the
# projections by hand (the next section trains them): every word gets a random embedding, and $W_Q = W_K = I$, so each position looks
# for positions with the **same word**. (A trained model learns $W_Q$, $W_K$ that look for whatever
# helps — a verb's subject, the previous occurrence of a name, ...)
#
# A language model that predicts the next word must not peek at later words. The **causal mask**
# allows position $i$ to attend only to positions $j \le i$ (the lower triangle).
#
# **What to look for:** left, each row lights up on every occurrence of its word ("the", "cat" and
# "sat" repeat), before *and after* itself. Right, with the causal mask, everything above the
# diagonal is exactly zero; the first "the" can only attend to itself, the last "the" to all three
# occurrences so far.

# %%
sentence = ["the", "cat", "sat", "on", "the", "mat", "and", "the", "cat", "sat"]
vocab = sorted(set(sentence))
emb = {w: rng.standard_normal(64) for w in vocab}
X = np.stack([emb[w] for w in sentence]) * 0.6  # (T, 64); the 0.6 sets how sharp the matching is
T = len(sentence)
_, w_full = attention(X, X, X)
causal = np.tril(np.ones((T, T), dtype=bool))  # True where j <= i
_, w_causal = attention(X, X, X, mask=causal)

fig, axes = plt.subplots(1, 2, figsize=(13, 5.5))
for ax, w, title in [(axes[0], w_full, "self-attention, no mask"), (axes[1], w_causal, "with causal mask")]:
    ax.imshow(w, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(T), sentence, rotation=60)
    ax.set_yticks(range(T), sentence)
    ax.set(xlabel="key position (attended to)", ylabel="query position", title=title)
plt.show()

assert np.all(w_causal[~causal] == 0) and np.allclose(w_causal.sum(1), 1)

# %% [markdown]
# ## Attention that learned its pattern
#
# Hand-set projections show what attention *can* do; a trained head shows what it *chooses* to do.
# Two tiny tasks on sequences of $T = 8$ random tokens (vocabulary of 10), each learned by the same
# one-head model: token embedding + position embedding → one attention head ($W_Q, W_K, W_V$, 32
# dimensions) → a linear read-out of each position's attention output. There is no residual path, so
# an output can only know what its head fetched.
#
# - **reverse**: output $t$ is input $T-1-t$ (no mask);
# - **delay by 2**: output $t$ is input $t-2$, with the causal mask (positions 0 and 1 have no target).
#
# Training uses `bestiary.scratch` (NumPy autograd, with the attention function checked equal to ours
# above) and Adam, for 60 steps of 64 sequences in quick mode and 150 in full mode.


# %%
T_TASK, VOCAB, D_HEAD = 8, 10, 32
STEPS_ATTN = 60 if QUICK else 150


class TinyAttention:
    def __init__(self, seed):
        self.tok, self.pos = Embedding(VOCAB, D_HEAD, seed=seed), Embedding(T_TASK, D_HEAD, seed=seed + 1)
        self.head, self.out = SingleHeadAttention(D_HEAD, seed=seed + 2), Linear(D_HEAD, VOCAB, seed=seed + 3)

    def parameters(self):
        return [p for m in (self.tok, self.pos, self.head, self.out) for p in m.parameters()]

    def __call__(self, x, causal):
        h = self.tok(x) + self.pos(np.arange(T_TASK))[None]  # (B, T, 32)
        o, w = self.head(h, is_causal=causal, return_weights=True)  # w: (B, T, T)
        return self.out(o), w  # logits (B, T, 10)


TASKS = {  # name -> (targets from inputs, causal?, where each output should read from)
    "reverse": (lambda x: x[:, ::-1], False, T_TASK - 1 - np.arange(T_TASK)),
    "delay by 2 (causal)": (
        lambda x: np.concatenate([np.full((len(x), 2), -100), x[:, :-2]], 1),  # -100 = no target
        True,
        np.arange(T_TASK) - 2,
    ),
}
x_eval = np.random.default_rng(7).integers(0, VOCAB, (500, T_TASK))
trained = {}
for name, (target_of, causal_task, source) in TASKS.items():
    model = TinyAttention(seed=0)
    _, w_init = model(x_eval, causal_task)
    opt, data_rng = Adam(model.parameters(), lr=1e-2), np.random.default_rng(1)
    for _ in range(STEPS_ATTN):
        xb = data_rng.integers(0, VOCAB, (64, T_TASK))
        logits, _ = model(xb, causal_task)
        loss = cross_entropy(logits, target_of(xb), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logits, w = model(x_eval, causal_task)
    has_target = source >= 0
    rows, cols = np.arange(T_TASK)[has_target], source[has_target]
    acc = (logits.data.argmax(-1) == target_of(x_eval))[:, has_target].mean()
    trained[name] = {
        "weights": w.data,
        "acc": float(acc),
        "mass": float(w.data[:, rows, cols].mean()),  # attention on the right source position
        "mass_init": float(w_init.data[:, rows, cols].mean()),
    }
    print(
        f"{name:20s} accuracy {acc:.3f};  attention on the source position: {trained[name]['mass']:.3f} "
        f"(at initialisation {trained[name]['mass_init']:.3f})"
    )

# %% [markdown]
# **What to look for:** each map is the trained head's average attention over 500 test sequences
# (row = output position, column = input position it reads). Left, reversing: a clean anti-diagonal —
# output 0 reads input 7, output 7 reads input 0. Right, delaying under the causal mask: a line two
# steps below the diagonal, and nothing above the diagonal. Positions 0 and 1 have nothing to copy
# and no target: position 0 can only see itself, and where position 1 looks was never trained (any
# split between inputs 0 and 1 is as good as another). Nobody told either head where to
# look: the maps are what gradient descent found, starting from a head that attended almost
# uniformly (the printed "at initialisation" mass).

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
for ax, (name, r) in zip(axes, trained.items()):
    im = ax.imshow(r["weights"].mean(0), cmap="viridis", vmin=0, vmax=1)
    ax.set(xlabel="input position (key)", ylabel="output position (query)")
    ax.set_title(f"trained head: {name}\naccuracy {r['acc']:.2f}")
plt.colorbar(im, ax=axes, fraction=0.03)
plt.show()

# %% [markdown]
# ## The RNN bottleneck, measured
#
# After reading $T$ tokens an RNN has only its hidden state $h_T$ (here 32 numbers) to remember all of
# them. How much of token $x_t$ is still in $h_T$? We feed 3000 random sequences of 40 tokens (each a
# random 4-D vector) through a random tanh RNN, then fit a linear read-out from $h_T$ back to $x_t$
# for every position $t$ (least squares on 2500 sequences) and score it by $R^2$ on the other 500
# (1 = perfectly recoverable, 0 = nothing left).
#
# Attention keeps every position's value and looks one up by matching a query against the keys.
# Here each key is a positional code (a random vector for each position) and the query for "position
# t" is the code of $t$: attention returns $x_t$ itself, however far back it is.

# %%
N_SEQ, T_SEQ, D_TOK, H = 3000, 40, 4, 32
tokens = rng.standard_normal((N_SEQ, T_SEQ, D_TOK))  # (N, T, 4)
Wx = rng.standard_normal((D_TOK, H)) / np.sqrt(D_TOK)
Wh = rng.standard_normal((H, H)) * 0.9 / np.sqrt(H)  # spectral radius ~0.9: a memory that fades slowly
h = np.zeros((N_SEQ, H))
for t in range(T_SEQ):
    h = np.tanh(tokens[:, t] @ Wx + h @ Wh)  # (N, H)

pos_codes = rng.standard_normal((T_SEQ, 64))  # one random key per position


def r2_of_readout(features, target, n_train=2500):
    """Fit target ~ features (+ bias) by least squares on the first n_train rows; R^2 on the rest."""
    F = np.concatenate([features, np.ones((len(features), 1))], axis=1)
    coef, *_ = np.linalg.lstsq(F[:n_train], target[:n_train], rcond=None)
    resid = target[n_train:] - F[n_train:] @ coef
    return 1 - (resid**2).sum() / ((target[n_train:] - target[n_train:].mean(0)) ** 2).sum()


rnn_r2, attn_r2 = [], []
for t in range(T_SEQ):
    rnn_r2.append(r2_of_readout(h, tokens[:, t]))
    # the query is the code of position t, scaled up so the match is sharp
    retrieved, _ = attention(pos_codes[t][None] * 2, pos_codes, tokens)  # (N, 1, 4)
    attn_r2.append(r2_of_readout(retrieved[:, 0], tokens[:, t]))

# %% [markdown]
# **What to look for:** the RNN's final state knows the last few tokens well, but the $R^2$ for early
# tokens falls to about zero: they have been overwritten. Attention's $R^2$ is flat at 1 — the
# distance does not matter. (The price: attention keeps all $T$ values and compares every query with
# every key, $O(T^2)$ work; the RNN keeps $O(1)$ state.)

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.plot(np.arange(T_SEQ), rnn_r2, "o-", ms=3, label="RNN: read x_t from the final state h_T")
ax.plot(np.arange(T_SEQ), attn_r2, "s-", ms=3, label="attention: query position t")
ax.set(
    xlabel="position t of the token (0 = first, 39 = last)",
    ylabel="R² of recovering x_t",
    ylim=(-0.1, 1.05),
    title="What survives to the end of the sequence?",
)
ax.legend()
plt.show()
print(
    f"RNN R²: first token {rnn_r2[0]:.2f}, last token {rnn_r2[-1]:.2f};  attention R² min {min(attn_r2):.3f}"
)

# %% [markdown]
# ## Result
#
# Most of this notebook is closed-form, so quick and full mode assert the same things: our attention
# equals PyTorch's to 1e-12; causal weights above the diagonal are exactly zero; without the
# $1/\sqrt d$ scale the attention entropy at $d = 1024$ is less than a third of the scaled one; and
# the first token is essentially gone from the RNN's final state ($R^2 < 0.1$, while the last token has
# $R^2 > 0.8$) but attention recovers every position ($R^2 > 0.99$).
#
# The trained heads (60 steps in quick mode, 150 in full mode; the same thresholds) must solve both
# tasks (accuracy at least 95 %, chance is 10 %) and put at least 80 % of their attention on the
# source position — against at most 30 % at initialisation, when they attend almost uniformly; the
# causal head must put exactly zero weight on the future.

# %%
assert entropy["unscaled"][-1] < entropy["scaled by 1/√d"][-1] / 3, entropy
assert rnn_r2[0] < 0.1 and rnn_r2[-1] > 0.8, (rnn_r2[0], rnn_r2[-1])
assert min(attn_r2) > 0.99, min(attn_r2)
for name, r in trained.items():
    assert r["acc"] >= 0.95 and r["mass"] >= 0.8 and r["mass_init"] <= 0.3, (name, r["acc"], r["mass"])
assert np.all(trained["delay by 2 (causal)"]["weights"][:, ~np.tril(np.ones((T_TASK, T_TASK), bool))] == 0)
print("OK")

# %% [markdown]
# ## Experiments to try
# - Multiply the queries of the animal lookup by 3. How do the `cat + dog` weights change? By 0.1?
# - Scale the RNN's recurrent weights to 1.2 or 0.5. How far back can the final state remember?
# - Give the sentence example learned-looking projections: random $W_Q \ne W_K$. Is the heatmap
#   still symmetric?
# - Implement multi-head attention: split $d$ into 4 heads, attend in each, concatenate. Compare
#   with `bestiary.scratch.MultiHeadAttention`.
# - Add a padding mask (some keys forbidden for every query) and check against
#   `torch.nn.functional.scaled_dot_product_attention` as above.
