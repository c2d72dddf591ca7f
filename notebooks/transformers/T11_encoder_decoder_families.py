# %% [markdown]
# # T11 · Three transformer families on one task: encoder, decoder, encoder-decoder
#
# The same transformer block gives three families, depending on **who may attend to whom**:
#
# - **encoder-only** (BERT): every token sees every token. Great for understanding a whole input
#   (classification, retrieval, tagging), but it produces one vector per *input* position — it has
#   no natural way to write an answer of free length;
# - **decoder-only** (GPT, Llama): a causal mask; each token sees only the past. Trained to predict
#   the next token, it generates text of any length, and a task is posed as a *prompt* to continue;
# - **encoder-decoder** (the original transformer, T5): a bidirectional encoder reads the input,
#   and a causal decoder writes the output while **cross-attending** to the encoder.
#
# We train one small model of each family — all built from `bestiary` — on the same little
# *translation* task: English number words to digits, `"seven hundred and forty two" → 742`.
#
# ## What you'll learn
# - the three attention patterns (bidirectional, causal, causal + cross) and what each permits;
# - how a task is framed for each family: fixed output slots for BERT, a prompt + continuation for
#   GPT, source → target for T5;
# - teacher forcing, loss masking, greedy decoding, and batched decoding of a decoder-only model
#   with left padding and a KV cache;
# - that all three can learn the task, and what the decoder families buy you: free-length output.

# %%
import random

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import bestiary

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

STEPS = 400 if QUICK else 3000  # training steps per model

# %% [markdown]
# ## The task: number words → digits
#
# Every number from 0 to 999 written in words is a "sentence" of 1 to 5 words; its translation is
# 1 to 3 digits. Word order partly follows digit order ("seven hundred ..." → "7..") but not
# always: "seventeen" is one word for two digits, "forty two" two words for two digits, and
# "and" translates to nothing. We hold out 20 % of the numbers: the test set contains only numbers
# the models never saw, so they must learn the *rules*, not a lookup table.

# %%
ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def to_words(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    words = [ONES[hundreds], "hundred"] if hundreds else []
    if rest or not words:
        if words:
            words.append("and")
        words += [ONES[rest]] if rest < 20 else [TENS[rest // 10]] + ([ONES[rest % 10]] if rest % 10 else [])
    return words


SPECIALS = ["<pad>", "<bos>", "<eos>", "<sep>", "<cls>"]
VOCAB = SPECIALS + sorted({w for n in range(1000) for w in to_words(n)}) + list("0123456789")
ID = {tok: i for i, tok in enumerate(VOCAB)}
PAD, BOS, EOS, SEP, CLS = (ID[s] for s in SPECIALS)
V = len(VOCAB)

numbers = list(range(1000))
random.Random(0).shuffle(numbers)
train_numbers, test_numbers = numbers[:800], numbers[800:]
for n in (7, 17, 42, 300, 742):
    print(f"{n:>4}: {' '.join(to_words(n))}")
print(
    f"vocabulary: {V} tokens; {len(train_numbers)} training numbers, {len(test_numbers)} held-out test numbers"
)


def source(n: int) -> list[int]:
    return [ID[w] for w in to_words(n)]


def target(n: int) -> list[int]:
    return [ID[c] for c in str(n)]


def pad_right(rows: list[list[int]], value: int = PAD) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def pad_left(rows: list[list[int]], value: int = PAD) -> torch.Tensor:
    width = max(map(len, rows))
    return torch.tensor([[value] * (width - len(r)) + r for r in rows])


def exact_match(predictions: list[list[int]], ns: list[int]) -> float:
    return float(np.mean([p == target(n) for p, n in zip(predictions, ns)]))


def train(model: nn.Module, loss_fn, steps: int = STEPS, lr: float = 2e-3) -> list[float]:
    """The same loop for every family: sample numbers, compute the family's loss, step."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    for _ in tqdm(range(steps), desc=type(model).__name__, leave=False):
        batch = random.choices(train_numbers, k=64)
        loss = loss_fn(model, batch)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


# %% [markdown]
# ## Three attention patterns
#
# **What to look for:** for a 4-word source and a 3-digit target, the BERT mask is all ones; the
# GPT mask is one lower-triangular block over source + separator + target (the source tokens cannot
# see each other's future either — that is the price of a single causal stack); the T5 decoder has
# a causal block over the target *and* a full cross-attention block onto the encoded source.

# %%
S, Tt = 4, 3
masks = {
    "encoder (BERT): bidirectional": np.ones((S, S)),
    "decoder (GPT): causal over [src, sep, tgt]": np.tril(np.ones((S + 1 + Tt, S + 1 + Tt))),
    "encoder-decoder (T5): decoder rows": np.hstack(
        [np.ones((Tt + 1, S)), np.tril(np.ones((Tt + 1, Tt + 1)))]
    ),
}
fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
for ax, (title, m) in zip(axes, masks.items()):
    ax.imshow(m, cmap="Greens", vmin=0, vmax=1.3)  # dark = may attend, white = masked
    ax.set(
        title=title,
        xlabel="attends to (key)",
        ylabel="query",
        xticks=range(m.shape[1]),
        yticks=range(m.shape[0]),
    )
    ax.set_xticks(np.arange(-0.5, m.shape[1]), minor=True)
    ax.set_yticks(np.arange(-0.5, m.shape[0]), minor=True)
    ax.grid(which="minor", color="white", linewidth=1.5)  # one cell per (query, key) pair
    ax.tick_params(which="minor", length=0)
axes[2].axvline(S - 0.5, color="k")
axes[2].set_xlabel("encoder outputs (cross) | decoder prefix (self)")
plt.show()

# %% [markdown]
# ## 1. Encoder-only (BERT-like): fill three output slots
#
# An encoder outputs one vector per input token, so we give it a fixed-size answer: the number
# zero-padded to three digits, predicted as three 10-way classifications from the vector of a
# `<cls>` token prepended to the input (BERT's recipe for sentence-level tasks). It works here only
# because we know the answer has at most three digits.

# %%
bert = bestiary.build(
    "encoder_only",
    vocab_size=V,
    d_model=64,
    n_layers=2,
    n_heads=4,
    d_ff=128,
    max_seq_len=8,
    dropout=0.0,
    pooler=False,
).to(DEVICE)
slots = nn.Linear(64, 3 * 10).to(DEVICE)  # hundreds, tens, units
bert.slots = slots  # register the head so the optimizer sees it


def bert_batch(ns: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    tokens = pad_right([[CLS] + source(n) for n in ns]).to(DEVICE)
    return tokens, (tokens != PAD).long()


def bert_loss(model: nn.Module, ns: list[int]) -> torch.Tensor:
    tokens, mask = bert_batch(ns)
    logits = model.slots(model(tokens, mask)[:, 0]).view(-1, 3, 10)  # (B, 3 slots, 10 digits)
    digits = torch.tensor([[n // 100, n // 10 % 10, n % 10] for n in ns], device=DEVICE)
    return F.cross_entropy(logits.reshape(-1, 10), digits.reshape(-1))


@torch.no_grad()
def bert_predict(model: nn.Module, ns: list[int]) -> list[list[int]]:
    model.eval()
    tokens, mask = bert_batch(ns)
    digits = model.slots(model(tokens, mask)[:, 0]).view(-1, 3, 10).argmax(-1).tolist()
    return [target(100 * a + 10 * b + c) for a, b, c in digits]


bert_losses = train(bert, bert_loss)
bert_acc = exact_match(bert_predict(bert, test_numbers), test_numbers)
print(f"BERT-like encoder: exact match on unseen numbers {bert_acc:.1%}")

# %% [markdown]
# ## 2. Decoder-only (GPT-like): prompt, then continue
#
# One causal stack reads `number words <sep>` and continues with the digits and `<eos>`. Training
# is plain next-token prediction (teacher forcing), with the loss **masked** to the answer: we do
# not want to spend capacity predicting the prompt. The model is `decoder_only` from the registry
# (RoPE + SwiGLU + RMSNorm, the Llama recipe).
#
# For batched greedy decoding the prompts have different lengths, so we pad them on the **left**:
# every prompt then ends at the same column and the next tokens line up. `padding_mask` hides the
# padding from attention, and since RoPE only sees offsets between tokens, the shift does not
# matter. A **KV cache** keeps the keys and values of the prompt, so each new digit costs one
# position, not a full re-run.

# %%
gpt = bestiary.build(
    "decoder_only", vocab_size=V, d_model=64, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=176, max_seq_len=16
).to(DEVICE)


def gpt_loss(model: nn.Module, ns: list[int]) -> torch.Tensor:
    prompts = [source(n) + [SEP] for n in ns]
    seqs = [p + target(n) + [EOS] for p, n in zip(prompts, ns)]
    tokens = pad_right(seqs).to(DEVICE)
    labels = tokens[:, 1:].clone()  # position t predicts token t+1
    for i, p in enumerate(prompts):
        labels[i, : len(p) - 1] = -100  # no loss on predicting the prompt itself
    labels[labels == PAD] = -100
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)


@torch.no_grad()
def gpt_predict(model: nn.Module, ns: list[int], max_new: int = 4) -> list[list[int]]:
    model.eval()
    prompts = pad_left([source(n) + [SEP] for n in ns]).to(DEVICE)
    keep = prompts != PAD  # (B, T) real tokens
    cache = model.init_cache(prompts.shape[0])
    logits = model(prompts, cache=cache, padding_mask=keep)
    outputs, done = [], torch.zeros(len(ns), dtype=torch.bool, device=DEVICE)
    for _ in range(max_new):
        nxt = logits[:, -1].argmax(-1)  # (B,) greedy
        outputs.append(nxt)
        done |= nxt == EOS
        if done.all():
            break
        keep = torch.cat([keep, torch.ones(len(ns), 1, dtype=torch.bool, device=DEVICE)], dim=1)
        logits = model(nxt[:, None], cache=cache, padding_mask=keep)
    rows = torch.stack(outputs, 1).tolist()
    return [r[: r.index(EOS)] if EOS in r else r for r in rows]


gpt_losses = train(gpt, gpt_loss)
gpt_acc = exact_match(gpt_predict(gpt, test_numbers), test_numbers)
print(f"GPT-like decoder: exact match on unseen numbers {gpt_acc:.1%}")

# %% [markdown]
# ## 3. Encoder-decoder (T5-like): read, then write
#
# The encoder reads the words bidirectionally; the decoder starts from `<bos>` and writes digits,
# each step attending causally to what it has written and fully to the encoder's output. The loss
# is on every target token. `encoder_decoder` reproduces T5's layout (relative position buckets, no
# biases, RMSNorm; `bestiary.build("t5_small")` is the published 60.5M-parameter size).

# %%
t5 = bestiary.build(
    "encoder_decoder",
    vocab_size=V,
    d_model=64,
    n_layers=2,
    n_heads=4,
    head_dim=16,
    d_ff=128,
    num_buckets=16,
    max_distance=16,
    dropout=0.0,
).to(DEVICE)


def t5_loss(model: nn.Module, ns: list[int]) -> torch.Tensor:
    src = pad_right([source(n) for n in ns]).to(DEVICE)
    tgt = pad_right([[BOS] + target(n) + [EOS] for n in ns]).to(DEVICE)
    labels = tgt[:, 1:].masked_fill(tgt[:, 1:] == PAD, -100)
    logits = model(src, tgt[:, :-1], src_mask=src != PAD)  # teacher forcing: feed the true prefix
    return F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1), ignore_index=-100)


@torch.no_grad()
def t5_predict(model: nn.Module, ns: list[int], max_new: int = 4) -> list[list[int]]:
    model.eval()
    src = pad_right([source(n) for n in ns]).to(DEVICE)
    memory = model.encode(src, src != PAD)  # the encoder runs once
    out = torch.full((len(ns), 1), BOS, device=DEVICE)
    for _ in range(max_new):
        nxt = model.decode(out, memory, src != PAD)[:, -1].argmax(-1)
        out = torch.cat([out, nxt[:, None]], dim=1)
    rows = out[:, 1:].tolist()
    return [r[: r.index(EOS)] if EOS in r else r for r in rows]


t5_losses = train(t5, t5_loss)
t5_acc = exact_match(t5_predict(t5, test_numbers), test_numbers)
print(f"T5-like encoder-decoder: exact match on unseen numbers {t5_acc:.1%}")

# %% [markdown]
# ## Results
#
# **What to look for:** all three losses fall; the two generative models reach their answers by
# writing them token by token, the encoder by filling its three slots. Below, a few held-out
# numbers side by side.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for name, losses in [("BERT-like (slots)", bert_losses), ("GPT-like", gpt_losses), ("T5-like", t5_losses)]:
    ax.plot(np.convolve(losses, np.ones(25) / 25, mode="valid"), label=name)
ax.set(yscale="log", xlabel="step", ylabel="training loss (smoothed, log)", title="three families, one task")
ax.legend()
plt.show()


def show(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


sample = test_numbers[:8]
pd.DataFrame(
    {
        "words": [" ".join(to_words(n)) for n in sample],
        "BERT-like": [show(p) for p in bert_predict(bert, sample)],
        "GPT-like": [show(p) for p in gpt_predict(gpt, sample)],
        "T5-like": [show(p) for p in t5_predict(t5, sample)],
    }
)

# %%
summary = pd.DataFrame(
    {
        "family": ["encoder-only (BERT-like)", "decoder-only (GPT-like)", "encoder-decoder (T5-like)"],
        "parameters": [bestiary.count_params(m) for m in (bert, gpt, t5)],
        "exact match, unseen numbers": [bert_acc, gpt_acc, t5_acc],
        "free-length output": ["no (3 fixed slots)", "yes", "yes"],
    }
)
summary

# %% [markdown]
# Every family learns to translate numbers it has never seen. We assert **≥ 90 % exact match on the
# held-out numbers for each model in full mode (≥ 50 % in quick mode)**.

# %%
threshold = 0.5 if QUICK else 0.9
for name, acc in [("BERT-like", bert_acc), ("GPT-like", gpt_acc), ("T5-like", t5_acc)]:
    assert acc >= threshold, f"{name}: {acc:.1%} < {threshold:.0%}"
print("all three families pass")

# %% [markdown]
# ## Experiments to try
#
# - Reverse the task (digits → words): the output is now longer than the input. How would you
#   adapt the BERT-like model? (You cannot, without fixing a maximum length and slots again.)
# - Give the GPT-like model a *prefix-LM* mask — bidirectional over the prompt, causal over the
#   answer (pass a custom `mask`) — and compare with the purely causal one.
# - Train on numbers below 500 only and test on 500–999: which family generalises to the unseen
#   hundreds digit?
# - Swap the T5-like model's relative position buckets for fewer buckets (`num_buckets=4`).
# - Measure decoding speed of `gpt_predict` with and without the KV cache on longer outputs.
