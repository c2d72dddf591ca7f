# %% [markdown]
# # T05 · Sampling strategies
#
# A language model outputs a probability distribution over its vocabulary for the next token. The
# *decoding strategy* turns that distribution into one token, and then the next, and the next. The
# same model can sound dull, creative or unhinged depending only on this choice.
#
# ## What you'll learn
# - Greedy decoding, temperature, top-k, top-p (nucleus), min-p and the repetition penalty, each as
#   a small transformation of the next-token distribution (`bestiary.generation`).
# - What each one does to a real model's distribution, shown on SmolLM2-135M-Instruct.
# - Beam search: keeping several hypotheses and why it is not the same as greedy.
# - How confident the model is at each step of a generation (the distribution visualised per step).

# %%
import math

import matplotlib.pyplot as plt
import pandas as pd
import torch

import bestiary
from bestiary.generation import beam_search, generate, probs_from_logits
from bestiary.llm import load_smollm2

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
NEW_TOKENS = 8 if QUICK else 48  # SmolLM2 on a CPU core: ~5-20 tokens/s

model, tok = load_smollm2(device=DEVICE)  # our Llama implementation with SmolLM2's weights
EOS = tok.eos_token_id  # <|im_end|>: the end of an assistant turn


def chat_prompt(question: str) -> torch.Tensor:
    """The instruct model expects its chat template around the user's message."""
    text = tok.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return torch.tensor(tok.encode(text), device=DEVICE)


def show(ids) -> str:
    return tok.decode(list(ids)).replace("\n", "⏎")


print(
    f"{sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, vocabulary {model.config.vocab_size}"
)

# %% [markdown]
# ## 1. One distribution, six ways to cut it
#
# We ask for a story and look at the model's distribution for the **first** token of its answer.
# Then we apply each strategy with `probs_from_logits`, the exact function the sampler uses:
#
# | strategy | keeps | rule |
# |---|---|---|
# | temperature T | all tokens | softmax(logits / T): T < 1 sharpens, T > 1 flattens |
# | top-k | the k most likely | renormalise over them |
# | top-p | the smallest most-likely set with mass ≥ p | adapts the count to the shape |
# | min-p | tokens with p ≥ min_p · p_max | adapts the cut to the model's confidence |
#
# **What to look for:** the grey bars are the model's raw probabilities; coloured bars are what the
# sampler would actually draw from. Top-k keeps exactly k bars; top-p keeps as many as needed to
# reach the mass; min-p keeps everything within a factor of the top token.

# %%
story = chat_prompt("Write a one-sentence story about a dragon.")
with torch.no_grad():
    logits = model(story[None])[0, -1].float()  # (V,) logits of the first answer token
raw = logits.softmax(-1)
top = raw.topk(15).indices
labels = [repr(tok.decode([int(i)])) for i in top]
settings = {
    "temperature 0.5": dict(temperature=0.5),
    "temperature 1.5": dict(temperature=1.5),
    "top-k 5": dict(top_k=5),
    "top-p 0.8": dict(top_p=0.8),
    "min-p 0.1": dict(min_p=0.1),
    "greedy (T=0)": dict(temperature=0),
}
fig, axes = plt.subplots(2, 3, figsize=(14, 6.5), sharey=True)
for ax, (name, kw) in zip(axes.flat, settings.items()):
    probs = probs_from_logits(logits, **kw)
    ax.bar(range(15), raw[top].cpu(), color="lightgray", label="raw (T=1)")
    ax.bar(range(15), probs[top].cpu(), color="C0", alpha=0.8, label=name)
    kept = int((probs > 0).sum()) if probs.min() == 0 else len(probs)
    ax.set_title(f"{name}: {kept} tokens can be drawn")
    ax.set_xticks(range(15), labels, rotation=70, fontsize=8)
    ax.legend(fontsize=8)
axes[0, 0].set_ylabel("probability")
axes[1, 0].set_ylabel("probability")
fig.suptitle("The first answer token of 'Write a one-sentence story about a dragon.'")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The same prompt, every strategy
#
# Same model, same prompt, same seed — only the decoding changes. Greedy is deterministic; the
# sampling strategies are random draws (a seeded `torch.Generator` makes them reproducible).
# Beam search keeps the 3 most probable partial answers at every step.

# %%
strategies = {
    "greedy": dict(temperature=0),
    "temperature 0.7": dict(temperature=0.7),
    "temperature 1.5": dict(temperature=1.5),
    "top-k 20": dict(temperature=1.0, top_k=20),
    "top-p 0.9": dict(temperature=1.0, top_p=0.9),
    "min-p 0.1": dict(temperature=1.0, min_p=0.1),
    "greedy + repetition penalty 1.3": dict(temperature=0, repetition_penalty=1.3),
}
rows = []
for name, kw in strategies.items():
    out = generate(
        model, story, NEW_TOKENS, eos_token_id=EOS, generator=torch.Generator(DEVICE).manual_seed(0), **kw
    )
    new = out[0, len(story) :]
    with torch.no_grad():  # log-probability of the continuation under the untouched model
        lp = model(out)[0, len(story) - 1 : -1].float().log_softmax(-1)
    logprob = float(lp.gather(1, new[:, None]).sum())
    rows.append({"strategy": name, "text": show(new), "log-prob": round(logprob, 2)})
beam_ids, beam_lp = beam_search(model, story, beam_width=3, max_new_tokens=NEW_TOKENS, eos_token_id=EOS)
rows.append({"strategy": "beam search (3)", "text": show(beam_ids), "log-prob": round(beam_lp, 2)})
results = pd.DataFrame(rows).set_index("strategy")
pd.set_option("display.max_colwidth", 200)
results

# %% [markdown]
# Beam search optimises the *total* log-probability of the whole answer, so it usually scores higher
# than greedy — but not always: it only keeps 3 prefixes, and the greedy prefix may be pruned on the
# way (and answers of different lengths are not directly comparable). High temperatures produce low-probability,
# often incoherent text; truncation (top-k/top-p/min-p) cuts off the tail where that nonsense lives.
#
# ## 3. The distribution at every step of a generation
#
# One forward pass over prompt + greedy answer gives the model's distribution at every answer
# position (the same numbers the sampler saw, thanks to causal masking).
#
# **What to look for:** each column is one generation step; the cells show the 8 most likely next
# tokens and their probabilities, the chosen (greedy) token on top. Bright columns are confident
# steps (a fact, a word's ending); dark, spread-out columns are real choices — that is where
# sampling strategies make a difference. The line below is the entropy in bits.

# %%
question = chat_prompt("What is the capital of France? Answer in one sentence.")
answer = generate(model, question, 12 if QUICK else 24, temperature=0, eos_token_id=EOS)
with torch.no_grad():
    step_probs = model(answer)[0, len(question) - 1 : -1].float().softmax(-1)  # (steps, V)
steps = step_probs.shape[0]
top_p_vals, top_ids = step_probs.topk(8, dim=-1)  # (steps, 8)
entropy = -(step_probs * step_probs.clamp_min(1e-12).log2()).sum(-1)
fig, (ax, ax2) = plt.subplots(2, 1, figsize=(max(8, steps * 1.1), 7.5), height_ratios=[4, 1], sharex=True)
ax.imshow(top_p_vals.T.cpu(), cmap="viridis", vmin=0, vmax=1, aspect="auto")
for s in range(steps):
    for r in range(8):
        word = tok.decode([int(top_ids[s, r])]).replace("\n", "⏎")[:9]
        ax.text(s, r, f"{word}\n{top_p_vals[s, r]:.2f}", ha="center", va="center", fontsize=7,
                color="black" if top_p_vals[s, r] > 0.5 else "white")  # fmt: skip
ax.set_yticks(range(8), [f"#{r + 1}" for r in range(8)])
ax.set_title("Top-8 next-token probabilities at each step of the greedy answer")
ax2.plot(range(steps), entropy.cpu(), "o-")
ax2.set_ylabel("entropy (bits)")
ax2.set_xlabel("generation step")
plt.tight_layout()
plt.show()
answer_text = tok.decode(answer[0, len(question) :].tolist())
print("answer:", answer_text)

# %% [markdown]
# ## Result
#
# Checks (the same in quick and full mode): the greedy answer names Paris; temperature 1.5 spreads
# the first-token distribution (higher entropy) and 0.5 sharpens it; top-k keeps exactly k tokens,
# top-p keeps the smallest set with mass ≥ p; the log-probability beam search reports is the one the
# model assigns to its answer.


# %%
def entropy_of(p: torch.Tensor) -> float:
    return float(-(p * p.clamp_min(1e-12).log()).sum())


assert "Paris" in answer_text, answer_text
assert (
    entropy_of(probs_from_logits(logits, temperature=1.5))
    > entropy_of(raw)
    > entropy_of(probs_from_logits(logits, temperature=0.5))
)
assert int((probs_from_logits(logits, top_k=5) > 0).sum()) == 5
kept = probs_from_logits(logits, top_p=0.8) > 0
sorted_raw = raw.sort(descending=True).values
assert float(raw[kept].sum()) >= 0.8 and int(kept.sum()) == int((sorted_raw.cumsum(0) < 0.8).sum()) + 1
with torch.no_grad():
    full = torch.cat([story, torch.tensor(beam_ids, device=DEVICE)])
    lp = model(full[None])[0, len(story) - 1 : -1].float().log_softmax(-1)
recomputed = float(lp.gather(1, full[len(story) :, None]).sum())
assert abs(recomputed - beam_lp) < 1e-2 * max(1.0, abs(beam_lp)), (recomputed, beam_lp)
assert not math.isnan(beam_lp)

# %% [markdown]
# ## Experiments to try
# - Raise `NEW_TOKENS` to 200 and decode greedily without the repetition penalty: does the model
#   start repeating itself? Which penalty value fixes it without breaking grammar?
# - Plot the number of tokens top-p 0.9 keeps at each step of a generation: it shrinks on
#   confident steps and grows on open ones — that adaptivity is the point of nucleus sampling.
# - Compare min-p 0.1 and top-p 0.9 at temperature 2.0: which one stays coherent? (This is the
#   argument of the min-p paper.)
# - Beam search with `length_penalty=1.0` vs 0: how does answer length change?
