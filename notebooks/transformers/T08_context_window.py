# %% [markdown]
# # T08 · The context window
#
# A transformer reads a window of T tokens and nothing else. Two consequences follow, and this lesson
# measures both. First, **what lies further back than the window cannot be learned**, however long you
# train: we build a task whose answer sits k tokens back and watch a model with a window shorter than
# k stay at chance while a longer one solves it at once. Second, **a model trained on windows of L
# tokens does not simply work on longer windows**: with rotary positions (RoPE), positions past L
# turn its slow rotary pairs to angles it never saw, and its loss climbs. We take one trained
# character model and, without retraining, stretch its RoPE three ways (plain extrapolation, linear
# position interpolation, YaRN) and measure the loss at L, 2L and 4L.
#
# ## What you'll learn
# - Why a window shorter than the dependency leaves a model exactly at chance, and how the first k
#   positions of *every* window are blind to a k-back dependency.
# - What a trained model does to solve "copy the token k back": one head attends to offset k.
# - Why plain RoPE breaks past its training length: the slow pairs' angles leave the trained range.
# - Position interpolation (divide every position by s) and YaRN (interpolate only the slow pairs,
#   keep the fast ones, sharpen the softmax), YaRN's frequency ramp written out and checked against
#   `bestiary.layers.positions.YaRN`.
# - Loss as a function of evaluation length and of position for all three, on the same weights.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import bestiary
from bestiary.data import get_lm_batch, tiny_shakespeare
from bestiary.layers.attention_maps import record_attention
from bestiary.layers.positions import RotaryEmbedding, YaRN
from bestiary.tokenizers import CharTokenizer
from bestiary.train import warmup_cosine

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

# %% [markdown]
# ## 1. A task whose answer lies k tokens back
#
# A stream of random symbols from an alphabet of V = 8. At every position the target is the symbol
# that came **k = 12 positions earlier**. Nothing else predicts it: the symbols are independent, so
# a model that cannot see position t − k can do no better than guessing, accuracy 1/V and loss ln V.
#
# A model with a context window of T reads T consecutive symbols and predicts a target at each of
# them. Position p of the window (counting from 0) sees the p + 1 symbols up to itself, so it can
# answer only if p ≥ k. We train two identical one-layer RoPE transformers, one with T = 8 < k and
# one with T = 24 > k, for the same number of steps.

# %%
V, K = 8, 12
SHORT, LONG = 8, 24


def lookback_batch(n: int, T: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """n windows of T symbols and, at every position, the symbol K positions earlier."""
    stream = torch.randint(V, (n, T + K), generator=generator)  # K symbols of history before the window
    return stream[:, K:], stream[:, :-K]  # input x[t], target x[t - K]


def train_lookback(T: int, steps: int) -> torch.nn.Module:
    bestiary.seed_everything(0)
    model = bestiary.build(
        "decoder_only",
        vocab_size=V,
        d_model=32,
        n_layers=1,
        n_heads=2,
        n_kv_heads=None,
        d_ff=64,
        max_seq_len=LONG,
    ).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in tqdm(range(steps), desc=f"window {T}"):
        x, y = lookback_batch(32, T, gen)
        loss = F.cross_entropy(model(x.to(DEVICE)).flatten(0, 1), y.to(DEVICE).flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


LOOKBACK_STEPS = 250 if QUICK else 1000
lookback = {T: train_lookback(T, LOOKBACK_STEPS) for T in (SHORT, LONG)}
test_gen = torch.Generator().manual_seed(1)
accuracy, test_loss = {}, {}
for T, model in lookback.items():
    x, y = lookback_batch(1000, T, test_gen)
    with torch.no_grad():
        logits = model(x.to(DEVICE)).cpu()
    accuracy[T] = (logits.argmax(-1) == y).float().mean(0)  # (T,): per position in the window
    test_loss[T] = F.cross_entropy(logits.flatten(0, 1), y.flatten()).item()
    print(
        f"window {T:2d}: loss {test_loss[T]:.3f} (ln V = {math.log(V):.3f}), accuracy {accuracy[T].mean():.1%}"
    )
print(f"window {LONG}: accuracy at positions >= k: {accuracy[LONG][K:].mean():.1%}, "
      f"before k: {accuracy[LONG][:K].mean():.1%} (chance {1 / V:.1%})")  # fmt: skip

# %% [markdown]
# **What to look for:** the window-8 model sits on the chance line at every position. The window-24
# model sits on it too at positions 0..11, then jumps to (near) 100 % from position 12 = k on: the
# same weights, blind or perfect depending only on whether the answer is inside the window.

# %%
fig, ax = plt.subplots(figsize=(7, 3.5))
for T, color, style in [(SHORT, "C3", "o-"), (LONG, "C0", "s--")]:
    ax.plot(range(T), accuracy[T], style, color=color, ms=8 if T == SHORT else 5, label=f"context window {T}")
ax.axhline(1 / V, color="gray", ls="--", label="chance, 1/V")
ax.axvline(K, color="black", ls=":", label=f"k = {K}: the answer enters the window")
ax.set(xlabel="position in the window", ylabel="test accuracy", ylim=(0, 1.05))
ax.set_title(f"Predict the symbol {K} positions back")
ax.legend(loc="center right", fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### How the long-window model does it
#
# `record_attention` recomputes each attention layer's softmax(q·kᵀ/√d) from the trained weights
# (its test checks the weights reproduce the layer's output). We average, over queries at positions
# ≥ k, the weight each head puts on the key d positions back.
#
# **What to look for:** one head puts most of its weight exactly at distance 12 = k, with little
# anywhere else: RoPE makes the score depend on the offset, so "look 12 back" is one learned
# direction in each (q, k) pair. The window-8 model has no such place to look.

# %%
x, _ = lookback_batch(200, LONG, test_gen)
with record_attention(lookback[LONG]) as maps:
    lookback[LONG](x.to(DEVICE))
w = maps["blocks.0.mixer"].cpu()  # (B, H, T, T)
queries = torch.arange(K, LONG)
by_offset = torch.stack([w[:, :, queries, queries - d].mean((0, 2)) for d in range(K + 1)], dim=1)  # (H, K+1)
fig, ax = plt.subplots(figsize=(7, 3))
for h in range(by_offset.shape[0]):
    ax.bar(np.arange(K + 1) + 0.4 * h - 0.2, by_offset[h], width=0.4, label=f"head {h}")
ax.set(xlabel="distance back from the query (positions)", ylabel="mean attention weight")
ax.set_xticks(range(K + 1))
ax.set_title(f"Window-{LONG} model: where queries at positions >= {K} look")
ax.legend()
plt.tight_layout()
plt.show()
best_head = by_offset[:, K].argmax().item()
print(f"head {best_head} puts {by_offset[best_head, K]:.0%} of its attention on distance {K}")

# %% [markdown]
# ## 2. Training a RoPE character model on windows of L
#
# Now a real language model: characters of Shakespeare, RoPE attention, trained on windows of
# L = 32 characters (quick mode; 64 in full mode), as in T02. Then we evaluate the *same weights*
# on windows of L, 2L and 4L.

# %%
text = tiny_shakespeare()
tok = CharTokenizer.train(text)
data = torch.tensor(tok.encode(text), dtype=torch.long)
n_train = int(0.9 * len(data))
train_data, val_data = data[:n_train], data[n_train:]
L = 32 if QUICK else 64
SCALE = 4  # we extend to 4L
size = dict(d_model=64, n_layers=2, n_heads=4) if QUICK else dict(d_model=128, n_layers=4, n_heads=8)
size.update(vocab_size=tok.vocab_size, n_kv_heads=None, d_ff=3 * size["d_model"])
head_dim = size["d_model"] // size["n_heads"]
STEPS, LR = (350, 1e-2) if QUICK else (2500, 3e-3)

bestiary.seed_everything(0)
lm = bestiary.build("decoder_only", max_seq_len=L, **size).to(DEVICE)
opt = torch.optim.AdamW(lm.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=0.1)
gen = torch.Generator().manual_seed(0)
for step in tqdm(range(STEPS), desc=f"RoPE LM, L = {L}"):
    for group in opt.param_groups:
        group["lr"] = LR * warmup_cosine(step, warmup=STEPS // 20, total=STEPS, min_ratio=0.1)
    xb, yb = get_lm_batch(train_data, L, 32, generator=gen, device=DEVICE)
    loss = F.cross_entropy(lm(xb).flatten(0, 1), yb.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
    opt.step()
print(
    f"{bestiary.count_params(lm):,} parameters, head_dim {head_dim}; last training batch loss {loss.item():.3f}"
)

# %% [markdown]
# ## 3. Three ways to read positions past L
#
# RoPE turns pair i of each query and key by the angle p·θ_i, θ_i = 10000^(−2i/D). Over the trained
# window, pair i completes L·θ_i / 2π turns. Fast pairs (many turns) saw every angle during
# training; slow pairs turned less than once, so positions beyond L give them angles — and q·k
# scores — the model has never met. Three ways to stretch the model to s·L, s = 4, without retraining:
#
# - **plain RoPE** (extrapolation): change nothing;
# - **position interpolation** (Chen et al., 2023): divide every position by s, so 4L positions span
#   the trained angle range; the price: neighbours are now a quarter-step apart in every pair;
# - **YaRN** (Peng et al., 2023): leave pairs with more than β_fast = 32 turns over L alone, divide
#   the frequency of pairs with fewer than β_slow = 1 turn by s, blend linearly in between; and
#   multiply the scores by (0.1 ln s + 1)², because a softmax over 4× more keys is flatter.
#
# The ramp, written out: pair i completes β turns when i = D·ln(L / 2πβ) / (2 ln θ); the blend runs
# linearly in i between those two pairs (rounded outwards, as in the authors' code).


# %%
def yarn_inv_freq(inv_freq, scale, L, head_dim, theta=10000.0, beta_fast=32.0, beta_slow=1.0):
    def pair_with(turns):  # the (fractional) pair index that completes `turns` turns over L
        return head_dim * math.log(L / (2 * math.pi * turns)) / (2 * math.log(theta))

    lo = max(math.floor(pair_with(beta_fast)), 0)  # pairs up to here: untouched
    hi = min(math.ceil(pair_with(beta_slow)), head_dim - 1)  # from here on: divided by the scale
    ramp = ((torch.arange(len(inv_freq)) - lo) / max(hi - lo, 1e-3)).clamp(0, 1)
    return inv_freq * (1 - ramp) + inv_freq / scale * ramp


plain_freq = RotaryEmbedding(head_dim).inv_freq.double()
ours = yarn_inv_freq(plain_freq, SCALE, L, head_dim)
library_yarn = YaRN(SCALE, L, head_dim=head_dim)
assert torch.allclose(ours, library_yarn(plain_freq)), (ours, library_yarn(plain_freq))
temperature = 0.1 * math.log(SCALE) + 1
assert math.isclose(temperature, library_yarn.attention_factor)
print(f"our ramp = bestiary's YaRN; score multiplier (0.1 ln {SCALE} + 1)^2 = {temperature**2:.3f}")
turns = L * plain_freq / (2 * math.pi)
print("turns over L per pair:", " ".join(f"{t:.2f}" for t in turns.tolist()))

# %% [markdown]
# **What to look for:** each pair's frequency after stretching, as a fraction of RoPE's. Position
# interpolation divides every pair by 4; YaRN leaves the fast pairs (left) at 1, reaches 1/4 for the
# pairs that turn less than once over L, and ramps in between.

# %%
fig, ax = plt.subplots(figsize=(7, 3.2))
pairs = np.arange(len(plain_freq))
ax.plot(pairs, np.ones(len(pairs)), "o-", label="plain RoPE")
ax.plot(pairs, np.full(len(pairs), 1 / SCALE), "s-", label="position interpolation")
ax.plot(pairs, (ours / plain_freq).numpy(), "^-", label="YaRN")
for i, t in enumerate(turns.tolist()):
    ax.annotate(f"{t:.2g}", (i, 1.04), ha="center", fontsize=7, color="gray")
ax.set(xlabel=f"rotary pair i (gray: turns over L = {L})", ylabel="new θ_i / old θ_i", ylim=(0, 1.15))
ax.set_title(f"Stretching RoPE by s = {SCALE}")
ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Each method is a model from the registry with the trained weights loaded: `decoder_only` with
# `max_seq_len = 4L` (plain), the same with `rope_scaling_factor = 4, rope_scaling_type = "linear"`
# (position interpolation), and `bestiary.build("yarn", original_max_seq_len=L, max_seq_len=4L)`.
# None has parameters of its own for positions, so `load_state_dict` fits all three exactly.
#
# We evaluate on fixed validation windows of 4L characters; "length ℓ" uses their first ℓ characters,
# and the loss is averaged over all ℓ predictions, as a perplexity at context ℓ would be.

# %%
methods = {
    "plain RoPE": bestiary.build("decoder_only", max_seq_len=SCALE * L, **size),
    "position interpolation": bestiary.build(
        "decoder_only", max_seq_len=SCALE * L, rope_scaling_factor=SCALE, rope_scaling_type="linear", **size
    ),
    "YaRN": bestiary.build("yarn", original_max_seq_len=L, max_seq_len=SCALE * L, **size),
}
for model in methods.values():
    model.load_state_dict(lm.state_dict())
    model.to(DEVICE).eval()
eval_gen = torch.Generator().manual_seed(123)
xv, yv = get_lm_batch(val_data, SCALE * L, 128 if QUICK else 256, generator=eval_gen, device=DEVICE)
lengths = [L * f for f in (1, 2, 4)]
loss_at, loss_by_position = {}, {}
with torch.no_grad():
    for name, model in methods.items():
        loss_at[name] = [
            F.cross_entropy(model(xv[:, :n]).flatten(0, 1), yv[:, :n].flatten()).item() for n in lengths
        ]
        per_token = F.cross_entropy(model(xv).flatten(0, 1), yv.flatten(), reduction="none").view(xv.shape)
        loss_by_position[name] = per_token.mean(0).view(-1, L // 2).mean(1).cpu()  # chunks of L/2 positions
        print(f"{name:>24}: " + "  ".join(f"{n}: {v:.3f}" for n, v in zip(lengths, loss_at[name])))

# %% [markdown]
# **What to look for:** left, plain RoPE is the best model at L (it *is* the trained model) and gets
# worse as the window grows; position interpolation is far worse than plain RoPE at L (its
# neighbours moved); YaRN starts a little above plain at L and stays nearly flat, ending clearly
# below plain at 4L. Right, the same per position of the 4L window, averaged over chunks of L/2
# positions: plain RoPE's loss climbs once positions pass L (dotted line), and from 2L on it sits
# well above YaRN's.

# %%
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for (name, values), marker in zip(loss_at.items(), "os^"):
    axes[0].plot(lengths, values, marker + "-", label=name)
    centres = (np.arange(len(loss_by_position[name])) + 0.5) * L / 2
    axes[1].plot(centres, loss_by_position[name], marker + "-", label=name)
axes[0].set(xlabel="evaluation length (characters)", ylabel="validation loss (nats / char)")
axes[0].set_xticks(lengths, [f"{n}\n({n // L}L)" for n in lengths])
axes[0].set_title(f"Trained on L = {L}, evaluated longer")
axes[1].axvline(L, color="black", ls=":", label="training length L")
axes[1].set(xlabel=f"position in a {SCALE * L}-character window", ylabel=f"mean loss over {L // 2} positions")
axes[1].set_title("Loss by position")
for ax in axes:
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Result
#
# - The k-back task is unlearnable with a window shorter than k: the window-8 model's accuracy stays
#   below 1/V + 5 points (quick and full), while the window-24 model, trained the same number of
#   steps, is above 95 % at every position ≥ k (quick: 250 steps; full: 1,000).
# - Its attention finds the answer: one head puts at least half its weight on distance k.
# - Plain RoPE degrades past L: its loss at 4L exceeds its loss at L by at least 0.15 nats/char
#   (quick and full). YaRN, on the same weights, degrades by less than half as much, and its loss
#   at 4L is below plain RoPE's; on positions 2L..4L plain RoPE's loss is above YaRN's by more than
#   0.2 nats/char on average. Position interpolation without fine-tuning is worse than plain RoPE
#   already at L, by at least 0.2 nats/char: it breaks the short-range pairs the model reads most.
#
# The lines below print this run's numbers.

# %%
plain, pi, yarn = (loss_at[m] for m in methods)
rise = {name: v[-1] - v[0] for name, v in loss_at.items()}
print(f"short window: accuracy {accuracy[SHORT].mean():.1%} (chance {1 / V:.1%}); "
      f"long window, positions >= k: {accuracy[LONG][K:].min():.1%} at worst")  # fmt: skip
print("loss rise from L to 4L: " + ", ".join(f"{n} {r:+.3f}" for n, r in rise.items()))
print(
    f"at 4L: YaRN {yarn[-1]:.3f} vs plain {plain[-1]:.3f}; at L: interpolation {pi[0]:.3f} vs plain {plain[0]:.3f}"
)
late = slice(4, None)  # chunks of L/2 from position 2L on
late_gap = (loss_by_position["plain RoPE"][late] - loss_by_position["YaRN"][late]).mean().item()
print(f"positions 2L..4L: plain RoPE above YaRN by {late_gap:.3f} nats/char on average")
assert accuracy[SHORT].mean() < 1 / V + 0.05, accuracy[SHORT]
assert accuracy[LONG][K:].min() > 0.95, accuracy[LONG]
assert by_offset[best_head, K] > 0.5, by_offset
assert rise["plain RoPE"] > 0.15, rise
assert rise["YaRN"] < 0.5 * rise["plain RoPE"], rise
assert yarn[-1] < plain[-1], (yarn, plain)
assert late_gap > 0.2, late_gap
assert pi[0] > plain[0] + 0.2, (pi, plain)

# %% [markdown]
# ## Experiments to try
# - Move k to 20 with the window of 24: does the model still learn it in the same number of steps?
#   With several layers and a sliding window (`sliding_window=8`), can stacked layers reach further
#   back than one window (Mistral's argument)?
# - Add `"ntk"` scaling (`rope_scaling_type="ntk"`): it raises θ instead of dividing positions. Where
#   does it land between plain RoPE and YaRN at 2L and at 4L?
# - Evaluate YaRN with the factor matched to each length (s = ℓ / L, "dynamic" scaling): does it
#   recover plain RoPE's loss at L while staying flat at 4L?
# - Fine-tune each stretched model for 50 steps on 4L windows: how much of the gap to the trained
#   length does each method close? (The papers' claim: YaRN needs the fewest steps.)
# - Drop YaRN's temperature (`attention_factor=1`): how much of its advantage at 4L is the ramp and
#   how much the sharper softmax?
