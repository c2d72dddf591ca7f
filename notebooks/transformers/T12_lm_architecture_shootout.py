# %% [markdown]
# # T12 · Language-model architecture shoot-out
#
# Eight architectures from five families, one task: predict the next character of Shakespeare.
# Every model is built by the same call, `bestiary.build_lm(name, vocab_size=..., d_model=...)`, at
# about the same parameter count, trained by the same loop on the same batches for the same CPU
# time, and scored on the same validation characters. What we get is a verdict for *this* budget
# (small models, minutes of CPU), not a law: change the budget or the hardware and the ranking can
# change, which is exactly why the table below is computed, never typed.
#
# ## What you'll learn
# - How to run a fair comparison: matched parameter counts, an equal compute budget charged per
#   model, interleaved runs (no model gets a quieter machine), one learning-rate schedule tied to the
#   budget, fixed validation windows.
# - What each family costs per token on a CPU (tokens/s) and what it buys in validation loss:
#   attention (transformer), state-space models (Mamba, Hyena), linear attention run as a recurrence
#   (RWKV), a gated linear recurrence mixed with local attention (Griffin), recurrent networks
#   (mLSTM, minGRU), and a dilated causal convolution (TCN).
# - Loss curves, perplexity, throughput and samples side by side, and a verdict table.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import bestiary
from bestiary.data import get_lm_batch, tiny_shakespeare
from bestiary.generation import generate
from bestiary.tokenizers import CharTokenizer
from bestiary.train import adamw, warmup_cosine

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
# one thread: each model's CPU time is then its wall time on an idle core
torch.set_num_threads(1)

text = tiny_shakespeare()
tok = CharTokenizer.train(text)
V = tok.vocab_size
data = torch.tensor(tok.encode(text), dtype=torch.long)
n_train = int(0.9 * len(data))
train_data, val_data = data[:n_train], data[n_train:]

counts = torch.zeros(V, V)
counts.index_put_((train_data[:-1], train_data[1:]), torch.ones(n_train - 1), accumulate=True)
bigram = (counts + 1) / (counts + 1).sum(1, keepdim=True)
bigram_val = -bigram[val_data[:-1], val_data[1:]].log().mean().item()
unigram = (counts.sum(0) + 1) / (counts.sum() + V)
unigram_val = -unigram[val_data[1:]].log().mean().item()
print(f"{len(train_data):,} training characters, vocabulary V = {V} (uniform guess: ln V = {math.log(V):.2f}); "
      f"validation loss of the baselines (T02): unigram {unigram_val:.3f}, bigram {bigram_val:.3f} nats/char")  # fmt: skip

# %% [markdown]
# ## 1. The contenders
#
# All at the same width `d_model` and 2 layers (the TCN 3, to reach back as far as the others);
# the per-model options bring the parameter counts within 1.4x of each other. Input embedding and
# output head are *untied* wherever that is an option: with a tied matrix, a small model spends its
# first hundred steps or so on the unigram plateau (the transformer most of all), which at quick
# mode's budget would be most of its training.
#
# | model | family | what mixes the positions |
# |---|---|---|
# | `decoder_only` | transformer | softmax attention over the whole window (RoPE) |
# | `mamba` | ssm | selective scan: input-dependent decay and write (T03) |
# | `hyena` | ssm | long implicit convolutions, gated (filters from a small MLP over positions) |
# | `rwkv` | attention | linear attention with a per-channel decay, computable as a recurrence |
# | `griffin` | attention | RG-LRU gated linear recurrence + local (sliding-window) attention |
# | `mlstm` | recurrent | xLSTM's matrix-memory LSTM with exponential gating |
# | `min_gru` | recurrent | a GRU whose gates see only the input: parallel scan |
# | `tcn` | convolutional | dilated causal convolutions |
#
# Quick mode: 48 wide, 32-character windows, batches of 8, **1.25 CPU seconds per model** (tiny, a
# few dozen to a few hundred steps: it shows the throughput spread and that everything learns, not
# which model wins). Full mode: 64 wide, 64-character windows, batches of 32, 75 CPU seconds each.

# %%
D = 48 if QUICK else 64
BLOCK = 32 if QUICK else 64
BATCH = 8 if QUICK else 32
BUDGET_S = 1.25 if QUICK else 75.0
N_EVALS = 4 if QUICK else 10
LR = 1e-2 if QUICK else 5e-3
CONTENDERS = {
    "decoder_only": dict(n_heads=4, d_ff=2 * D, max_seq_len=BLOCK),
    "mamba": dict(d_state=4, expand=3, scan="cumsum"),
    "hyena": dict(d_ff=D, max_seq_len=BLOCK),
    "rwkv": dict(head_dim=16, d_ff=D, max_seq_len=BLOCK),
    "griffin": dict(n_heads=4, d_ff=2 * D),
    "mlstm": dict(n_heads=4),
    "min_gru": dict(d_ff=2 * D),
    "tcn": dict(n_layers=3),
}
models = {}
for name, options in CONTENDERS.items():
    if "tie_embeddings" in bestiary.card(name).options:
        options = {**options, "tie_embeddings": False}  # untied everywhere it is an option (see above)
    bestiary.seed_everything(0)
    models[name] = bestiary.build_lm(name, vocab_size=V, d_model=D, **{"n_layers": 2, **options})
params = {name: bestiary.count_params(m) for name, m in models.items()}
families = {name: bestiary.card(name).family for name in models}
for name in models:
    print(f"{name:13s} {families[name]:14s} {params[name]:8,} parameters")
spread = max(params.values()) / min(params.values())
print(f"{len(set(families.values()))} families; largest / smallest parameter count: {spread:.2f}")
assert len(set(families.values())) >= 5 and spread < 1.4

# %% [markdown]
# ## 2. The loop and the race
#
# T03's loop: random training windows (the same batches for every model: one seeded generator
# each), AdamW with weight decay on matrices, clipping at 1, warm-up + cosine over the fraction of
# the budget used. The eight runs take one step each in turn, each charged only the CPU time of its
# own steps; each is evaluated `N_EVALS` times on fixed, evenly spread validation windows.

# %%
starts = torch.linspace(0, len(val_data) - BLOCK - 2, 64 if QUICK else 256).long()
val_idx = starts[:, None] + torch.arange(BLOCK)[None]
val_x, val_y = val_data[val_idx].to(DEVICE), val_data[val_idx + 1].to(DEVICE)


@torch.no_grad()
def val_loss(model: torch.nn.Module) -> float:
    model.eval()
    loss = sum(
        F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="sum").item()
        for x, y in zip(val_x.split(64), val_y.split(64))
    )
    model.train()
    return loss / val_y.numel()


class Run:
    def __init__(self, name: str, model: torch.nn.Module):
        self.name, self.model = name, model.to(DEVICE)
        self.opt = adamw(model, lr=LR, betas=(0.9, 0.99), weight_decay=0.1)
        self.gen = torch.Generator().manual_seed(1)
        self.steps, self.seconds = 0, 0.0
        self.history = [(0, 0.0, val_loss(model))]  # (step, CPU seconds, validation loss)

    @property
    def done(self) -> bool:
        return self.seconds >= BUDGET_S

    def step(self) -> None:
        start = time.process_time()
        for group in self.opt.param_groups:
            group["lr"] = LR * warmup_cosine(
                int(1000 * self.seconds / BUDGET_S), warmup=50, total=1000, min_ratio=0.1
            )
        xb, yb = get_lm_batch(train_data, BLOCK, BATCH, generator=self.gen, device=DEVICE)
        loss = F.cross_entropy(self.model(xb).flatten(0, 1), yb.flatten())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self.steps += 1
        self.seconds += time.process_time() - start
        if self.seconds >= BUDGET_S * len(self.history) / N_EVALS or self.done:
            self.history.append((self.steps, self.seconds, val_loss(self.model)))


runs = [Run(name, model) for name, model in models.items()]
with tqdm(
    total=len(runs) * BUDGET_S,
    desc="training (CPU s, all models)",
    bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}",
) as bar:
    while not all(r.done for r in runs):
        for r in runs:
            if not r.done:
                before = r.seconds
                r.step()
                bar.update(r.seconds - before)

# %% [markdown]
# ## 3. Loss curves
#
# **What to look for:** every curve starts near the uniform guess (ln V, printed above) and ends below the
# unigram line; the step counts in the legend differ several-fold at the same budget, so a model
# that learns more per step can still finish behind one that simply takes more steps. In full mode
# all the curves also cross the bigram line; in quick mode some may still be near or above it when
# the time runs out.

# %%
fig, ax = plt.subplots(figsize=(10, 5))
for r in runs:
    _, secs, losses = zip(*r.history)
    ax.plot(secs, losses, "o-", ms=3, label=f"{r.name} ({r.steps} steps)")
ax.axhline(unigram_val, color="gray", ls="--", label="unigram")
ax.axhline(bigram_val, color="black", ls="--", label="bigram")
ax.set(xlabel="training CPU seconds", ylabel="validation loss (nats / char)", ylim=(1.2, 4.6),
       title=f"{len(runs)} architectures, {BUDGET_S:g} CPU s each")  # fmt: skip
ax.legend(fontsize=8, ncol=2)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. The verdict table
#
# Sorted by final validation loss. Tokens/s counts training tokens (batch × window) per CPU second
# of training steps: the cost of a forward + backward + update per token.

# %%
rows = []
for r in runs:
    final = r.history[-1][2]
    rows.append(dict(name=r.name, family=families[r.name], params=params[r.name], steps=r.steps,
                     tok_s=r.steps * BATCH * BLOCK / r.seconds, val=final, ppl=math.exp(final)))  # fmt: skip
rows.sort(key=lambda row: row["val"])
print(
    f"{'rank':>4}  {'model':13s} {'family':14s} {'params':>8} {'steps':>6} {'tokens/s':>9} {'val loss':>8} {'ppl':>6}"
)
for rank, row in enumerate(rows, 1):
    print(f"{rank:>4}  {row['name']:13s} {row['family']:14s} {row['params']:8,} {row['steps']:6d} "
          f"{row['tok_s']:9,.0f} {row['val']:8.3f} {row['ppl']:6.2f}")  # fmt: skip
print(f"baselines: bigram {bigram_val:.3f} (ppl {math.exp(bigram_val):.2f}), unigram {unigram_val:.3f} "
      f"(ppl {math.exp(unigram_val):.2f}), uniform ppl {V}")  # fmt: skip
fastest = max(rows, key=lambda row: row["tok_s"])
slowest = min(rows, key=lambda row: row["tok_s"])
print(f"fastest {fastest['name']} ({fastest['tok_s']:,.0f} tokens/s) vs slowest {slowest['name']} "
      f"({slowest['tok_s']:,.0f}): {fastest['tok_s'] / slowest['tok_s']:.1f}x; best: {rows[0]['name']}")  # fmt: skip

# %% [markdown]
# **What to look for:** left, what each model bought with its budget, best at the top (dashed: the
# baselines); right, what it cost per training token, on a log scale. Read the two together: the
# throughput of the fastest and the slowest model differs several-fold (the ratio printed above,
# asserted > 2x below), while their parameter counts differ by less than 1.4x. A model with a
# long bar on the right but a middling loss learns little per step and makes it up in steps; one
# with a short bar on the right and a low loss learns much from each of its few steps.

# %%
names = [row["name"] for row in rows]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].barh(names, [row["val"] for row in rows], color="C0")
axes[0].axvline(bigram_val, color="black", ls="--", label="bigram")
axes[0].axvline(unigram_val, color="gray", ls="--", label="unigram")
axes[0].set(xlabel="final validation loss (nats / char)", xlim=(1.0, 3.6))
axes[0].invert_yaxis()
axes[0].legend()
axes[1].barh(names, [row["tok_s"] for row in rows], color="C1")
axes[1].set(xlabel="training tokens per CPU second", xscale="log")
axes[1].invert_yaxis()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Samples
#
# One sample per model, the same seed, prompt (a newline) and temperature 0.8, decoded incrementally
# where the model can (a KV cache for attention, a fixed-size state for the recurrent and
# state-space models). In quick mode expect letter salad with a few real short words; with full
# mode's budget, more real words and the layout of a play (names in capitals, line breaks).

# %%
for row in rows:
    model = models[row["name"]].eval()
    start = torch.tensor([tok.encode("\n")], device=DEVICE)
    out = generate(model, start, BLOCK - 1, temperature=0.8, generator=torch.Generator(DEVICE).manual_seed(0))
    print(f"--- {row['name']} (val {row['val']:.3f}) ---\n{tok.decode(out[0, 1:].tolist())}\n")

# %% [markdown]
# ## Result
#
# What holds for every one of these architectures, and the gap in cost between them:
#
# - every model beats the unigram baseline on validation loss by at least **0.3 nats/char in quick
#   mode** (1.25 CPU seconds of training) and beats the **bigram** baseline in full mode (75 CPU s);
# - training throughput differs by more than **2x** between the fastest and the slowest model (same
#   parameter count within 1.4x): architecture, not size, sets the cost per token.
#
# The ranking itself is printed above, from this run; at quick mode's budget it mostly reflects
# steps per second.

# %%
for row in rows:
    if QUICK:
        assert row["val"] < unigram_val - 0.3, (row["name"], row["val"], unigram_val)
    else:
        assert row["val"] < bigram_val, (row["name"], row["val"], bigram_val)
ratio = fastest["tok_s"] / slowest["tok_s"]
print(f"every model below {'unigram - 0.3' if QUICK else 'bigram'}; throughput ratio {ratio:.1f}x")
assert ratio > 2

# %% [markdown]
# ## Experiments to try
# - Give every model the same number of *steps* instead of the same time: which ranks change?
# - Double `BLOCK`: attention pays T² per window, the recurrences and scans T.
# - Tune the learning rate per model (one shared LR favours some architectures): how much of the
#   spread is the LR?
# - Add `lstm`, `retnet`, `gla`, `hawk` or `delta_net` (see `bestiary.list_models()`), or a
#   hybrid from `hybrid_builder`.
# - On a GPU, rerun and compare tokens/s: the ranking of costs changes with the hardware.
