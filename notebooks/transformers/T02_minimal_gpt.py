# %% [markdown]
# # T02 · A minimal GPT
#
# A GPT is a stack of transformer blocks that reads a sequence of tokens and, at every position,
# predicts the next one. It may only look *backwards*: that is the causal mask. We write one from
# scratch in about sixty lines, check that it computes exactly what `bestiary.build("decoder_only")`
# computes, then train the library's model on Shakespeare, character by character, and check that it
# learned more than the simplest language model there is: a table of which character follows which.
#
# ## What you'll learn
# - The decoder-only architecture, written out: token + position embedding → blocks (causal
#   multi-head self-attention + MLP, each pre-norm with a residual) → final LayerNorm → logits.
# - What the causal mask is, and a test that proves the model cannot peek at the future.
# - The baseline every character model must beat: the **bigram** model (counts of character pairs).
# - A complete training loop (AdamW, warm-up + cosine schedule, gradient clipping, evaluation).
# - How samples improve during training, loss curves, perplexity, and what the trained heads look at.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import bestiary
from bestiary.data import get_lm_batch, tiny_shakespeare
from bestiary.generation import generate
from bestiary.tokenizers import CharTokenizer
from bestiary.train import warmup_cosine

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

text = tiny_shakespeare()
tok = CharTokenizer.train(text)
data = torch.tensor(tok.encode(text), dtype=torch.long)
n_train = int(0.9 * len(data))
train_data, val_data = data[:n_train], data[n_train:]
print(f"{len(text):,} characters, vocabulary of {tok.vocab_size}: {''.join(tok.chars)!r}")

# %% [markdown]
# ## 1. The baseline: a bigram model
#
# Before any network, the simplest language model: predict the next character from the current one
# only, with the probabilities counted on the training text, P(b | a) = count(a b) / count(a ·)
# (plus one to every count, so no pair has probability zero). This *is* the best possible model that
# sees one character of context, so a GPT that does not beat it has learned nothing a table could not.

# %%
V = tok.vocab_size
counts = torch.zeros(V, V)
counts.index_put_((train_data[:-1], train_data[1:]), torch.ones(len(train_data) - 1), accumulate=True)
bigram_probs = (counts + 1) / (counts + 1).sum(1, keepdim=True)  # row a: P(next | a)
bigram_val = -bigram_probs[val_data[:-1], val_data[1:]].log().mean().item()
unigram = (counts.sum(0) + 1) / (counts.sum() + V)
unigram_val = -unigram[val_data[1:]].log().mean().item()
print(
    f"validation loss: unigram {unigram_val:.3f}, bigram {bigram_val:.3f} nats/char (uniform: {math.log(V):.3f})"
)
g = torch.Generator().manual_seed(0)
chars = [tok.encode("\n")[0]]
for _ in range(120):
    chars.append(torch.multinomial(bigram_probs[chars[-1]], 1, generator=g).item())
print("a bigram sample:\n" + tok.decode(chars[1:]))

# %% [markdown]
# ## 2. A GPT, written out
#
# The whole model, GPT-2's layout at a laptop size. Read it top to bottom:
#
# - **attention**: one linear layer makes queries, keys and values for every position (stacked
#   q | k | v, as GPT-2's `c_attn`); they are split into `n_heads` heads; each head scores
#   q·k/√d_head, masks the future with −∞, takes a softmax and averages the values; the heads are
#   concatenated and projected back;
# - **MLP**: widen to 4·d, GELU, project back — each position on its own;
# - **block**: `x + attn(LN(x))`, then `x + mlp(LN(x))` (pre-norm, residual);
# - **GPT**: token embedding + a learned vector per position, the blocks, a final LayerNorm, and a
#   linear head to one logit per vocabulary entry, which shares its matrix with the token embedding.
#
# The logits at position t are the prediction for token t+1, so one forward pass over a window of
# T characters gives T training examples at once.


# %%
class CausalSelfAttention(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(d, 3 * d)  # queries | keys | values for every head, in one matmul
        self.proj = nn.Linear(d, d)
        self.weights = None  # the last attention weights, kept to look at them later

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(C // self.n_heads)  # (B, heads, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # j > i
        weights = scores.masked_fill(future, float("-inf")).softmax(-1)
        self.weights = weights.detach()
        out = (weights @ v).transpose(1, 2).reshape(B, T, C)  # heads side by side again
        return self.proj(out)


class MLP(nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(d), CausalSelfAttention(d, n_heads)
        self.ln2, self.mlp = nn.LayerNorm(d), MLP(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # positions talk to each other
        return x + self.mlp(self.ln2(x))  # each position thinks on its own


class GPT(nn.Module):
    def __init__(self, vocab: int, block_size: int, d: int, n_layers: int, n_heads: int):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(block_size, d)
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight  # tied: one matrix reads and writes tokens

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))  # (B, T, d)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, vocab)


# %% [markdown]
# ## 3. The same model from the library
#
# `bestiary.build("decoder_only", ...)` is a GPT/Llama-style decoder; with `position="learned"`,
# `norm="layernorm"`, `mlp="gelu"`, `bias=True`, `fused_qkv=True` and full multi-head attention it is
# the GPT above. Only the names differ, so we copy our weights across with a table of renamings and
# compare the logits on the same input. From here on we train the library's model: it is the same
# computation, plus a KV cache for generation, fused attention kernels and input checks.

# %%
BLOCK = 64
config = dict(d_model=64, n_layers=2, n_heads=4) if QUICK else dict(d_model=128, n_layers=4, n_heads=4)
ours = GPT(V, BLOCK, config["d_model"], config["n_layers"], config["n_heads"]).to(DEVICE)
model = bestiary.build(
    "decoder_only", vocab_size=V, max_seq_len=BLOCK, n_kv_heads=None, d_ff=4 * config["d_model"],
    position="learned", norm="layernorm", mlp="gelu", bias=True, fused_qkv=True, **config,
).to(DEVICE)  # fmt: skip
RENAME = [  # ours -> the library's
    ("wte.", "tok_embed."), ("wpe.", "pos_embed."), (".ln1.", ".mixer_norm."), (".attn.qkv.", ".mixer.qkv_proj."),
    (".attn.proj.", ".mixer.out_proj."), (".ln2.", ".mlp_norm."), (".mlp.fc.", ".mlp.up."),
    (".mlp.proj.", ".mlp.down."), ("ln_f.", "norm."),
]  # fmt: skip


def renamed(state: dict, table: list[tuple[str, str]]) -> dict:
    out = {}
    for name, tensor in state.items():
        for old, new in table:
            if old.startswith("."):  # a part inside a block
                name = name.replace(old, new)
            elif name.startswith(old):  # a top-level part
                name = new + name[len(old) :]
        out[name] = tensor
    return out


model.load_state_dict(renamed(ours.state_dict(), RENAME))
x = torch.randint(0, V, (4, BLOCK), device=DEVICE)
with torch.no_grad():
    difference = (ours(x) - model(x)).abs().max().item()
scale = model(x).abs().max().item()
print(f"{bestiary.count_params(model):,} parameters; logits up to {scale:.1f}, "
      f"max |ours - library| on the same input: {difference:.1e}")  # fmt: skip
assert difference < 1e-5 * max(scale, 1.0)  # float32 rounding: the library uses a fused attention kernel

# For training we start the library's model from its own initialisation, GPT-2's: every matrix
# N(0, 0.02), the projections into the residual stream smaller still. (Ours kept PyTorch's
# defaults for brevity: N(0, 1) embeddings give logits of ~60 at step 0, a bad place to start.)
bestiary.seed_everything(0)
model = bestiary.build(
    "decoder_only", vocab_size=V, max_seq_len=BLOCK, n_kv_heads=None, d_ff=4 * config["d_model"],
    position="learned", norm="layernorm", mlp="gelu", bias=True, fused_qkv=True, **config,
).to(DEVICE)  # fmt: skip
TO_OURS = [(new, old) for old, new in RENAME]

# %% [markdown]
# ## 4. The causal mask
#
# Position t must not see positions > t: they are what it has to predict. In `CausalSelfAttention`
# the scores above the diagonal are set to −∞ before the softmax, so their weight is exactly 0.
#
# The renaming table works backwards too: we load the library's freshly initialised weights into
# our GPT, whose attention layers keep their weights for us to look at.
#
# **What to look for:** the attention weights of one head of the untrained model on 12 characters:
# the upper triangle is exactly zero, row 0 puts all its weight on position 0, and each row t
# spreads its weight evenly over columns 0..t (the small initial weights give near-equal scores: a
# fresh model has no preferences yet).

# %%
ours.load_state_dict(renamed(model.state_dict(), TO_OURS))
with torch.no_grad():
    ours(x[:1, :12])
fig, ax = plt.subplots(figsize=(4.5, 4.5))
ax.imshow(ours.blocks[0].attn.weights[0, 0].cpu(), cmap="Greens", vmin=0, vmax=1)
ax.set(xlabel="key position (what is looked at)", ylabel="query position (who looks)")
ax.set_title("Causal attention weights, untrained")
plt.tight_layout()
plt.show()

# %% [markdown]
# A direct test of causality on the library's model: change the *last* token of a sequence. The
# logits at all earlier positions must not change at all.

# %%
x2 = x.clone()
x2[:, -1] = (x2[:, -1] + 1) % V
with torch.no_grad():
    same_past = torch.allclose(model(x)[:, :-1], model(x2)[:, :-1])
print("earlier predictions unchanged by a future token:", same_past)
assert same_past

# %% [markdown]
# ## 5. Training
#
# A plain loop: sample random windows of 64 characters, predict every next character, cross-entropy,
# AdamW. The learning rate warms up (Adam's statistics are noisy at first) and then follows a
# cosine down to 10%. Every `EVAL_EVERY` steps we estimate train/validation loss on fixed batches
# and print a sample. Quick mode trains a 2-layer, 64-wide model for 400 steps at a high learning
# rate; full mode a 4-layer, 128-wide one for 3,000 steps.

# %%
STEPS = 400 if QUICK else 3000
EVAL_EVERY = 100 if QUICK else 250
BATCH = 32
LR = 1e-2 if QUICK else 3e-3
opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.99), weight_decay=0.1)
gen = torch.Generator().manual_seed(0)
eval_gen = torch.Generator().manual_seed(123)
eval_batches = {
    split: [get_lm_batch(d, BLOCK, 64, generator=eval_gen, device=DEVICE) for _ in range(4 if QUICK else 16)]
    for split, d in [("train", train_data), ("val", val_data)]
}


@torch.no_grad()
def estimate_loss() -> dict[str, float]:
    model.eval()
    out = {}
    for split, batches in eval_batches.items():
        losses = [F.cross_entropy(model(xb).flatten(0, 1), yb.flatten()).item() for xb, yb in batches]
        out[split] = sum(losses) / len(losses)
    model.train()
    return out


def sample(n: int = 120) -> str:
    model.eval()
    start = torch.tensor([tok.encode("\n")], device=DEVICE)
    out = generate(  # use_cache=False slides the 64-character window along as the text grows
        model, start, n, temperature=0.8, use_cache=False, generator=torch.Generator(DEVICE).manual_seed(0)
    )
    model.train()
    return tok.decode(out[0, 1:].tolist())


history, curve, samples = [], [], {}
model.train()
t0 = time.perf_counter()
for step in tqdm(range(STEPS + 1), desc="training"):
    if step % EVAL_EVERY == 0 or step == STEPS:
        losses = estimate_loss()
        history.append({"step": step, **losses})
        samples[step] = sample()
        tqdm.write(f"step {step}: train {losses['train']:.3f}  val {losses['val']:.3f}")
    if step == STEPS:
        break
    for group in opt.param_groups:
        group["lr"] = LR * warmup_cosine(step, warmup=STEPS // 20, total=STEPS, min_ratio=0.1)
    xb, yb = get_lm_batch(train_data, BLOCK, BATCH, generator=gen, device=DEVICE)
    loss = F.cross_entropy(model(xb).flatten(0, 1), yb.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    curve.append(loss.item())
print(f"trained {STEPS} steps in {time.perf_counter() - t0:.0f} s")

# %% [markdown]
# ## 6. Samples during training
#
# The same seed, the same prompt (a newline), at each evaluation point. First noise; then letters
# and spaces in plausible proportions (about where the bigram model stops); then short real words,
# names in capitals followed by a colon, line breaks.

# %%
for step, s in samples.items():
    print(f"--- step {step} ---\n{s}\n")

# %% [markdown]
# ## 7. Loss curves and perplexity
#
# Perplexity is exp(loss): "as uncertain as choosing uniformly among this many characters". A
# uniform guess has perplexity = vocabulary size; the dashed lines are the unigram (character
# frequencies only) and bigram baselines of section 1.
#
# **What to look for:** training loss (noisy, per batch) and validation loss fall together, past the
# unigram line within the first evaluation interval and then below the bigram line, ending clearly
# under it; validation stays close to training (no overfitting at this size and length).

# %%
steps_eval = [h["step"] for h in history]
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
axes[0].plot(curve, alpha=0.4, label="train (per batch)")
axes[0].plot(steps_eval, [h["train"] for h in history], "o-", label="train (eval batches)")
axes[0].plot(steps_eval, [h["val"] for h in history], "o-", label="validation")
for value, name, color in [(unigram_val, "unigram", "gray"), (bigram_val, "bigram", "black")]:
    axes[0].axhline(value, color=color, ls="--", label=f"{name} baseline")
    axes[1].axhline(math.exp(value), color=color, ls="--", label=name)
axes[0].set(xlabel="step", ylabel="cross-entropy (nats / char)", ylim=(1.2, 4.6))
axes[0].legend()
axes[1].plot(steps_eval, [math.exp(h["val"]) for h in history], "o-", color="C2", label="GPT (validation)")
axes[1].set(xlabel="step", ylabel="validation perplexity", yscale="log")
axes[1].legend()
plt.tight_layout()
plt.show()
final = history[-1]
print(f"final val loss {final['val']:.3f} nats/char, perplexity {math.exp(final['val']):.2f} "
      f"(bigram {math.exp(bigram_val):.2f}, unigram {math.exp(unigram_val):.1f}, uniform {V})")  # fmt: skip

# %% [markdown]
# ## 8. What the trained heads look at
#
# Copy the trained weights back into *our* GPT (the renaming table, reversed) and run it on a line of
# the validation text: each head's attention weights are kept by `CausalSelfAttention`.
#
# **What to look for:** trained heads are no longer uniform: some put almost all their weight on the
# current or the previous one or two characters (a bright band next to the diagonal: n-gram
# features), others spread out over the current word or jump back to a space or line start. Rows
# are queries, columns the characters they read.

# %%
ours.load_state_dict(renamed(model.state_dict(), TO_OURS))
line = tok.decode(val_data[1000:1032].tolist())
with torch.no_grad():
    agree = (
        (ours(val_data[None, 1000:1032].to(DEVICE)) - model(val_data[None, 1000:1032].to(DEVICE))).abs().max()
    )
assert agree < 1e-4
n_layers, n_heads = config["n_layers"], config["n_heads"]
fig, axes = plt.subplots(n_layers, n_heads, figsize=(2.6 * n_heads, 2.6 * n_layers), squeeze=False)
labels = [c if c != "\n" else "⏎" for c in line]
previous_token_weight = {}
for layer in range(n_layers):
    w = ours.blocks[layer].attn.weights[0].cpu()  # (heads, T, T)
    for head in range(n_heads):
        ax = axes[layer, head]
        ax.imshow(w[head], cmap="viridis", vmin=0, vmax=1)
        previous_token_weight[(layer, head)] = w[head].diagonal(-1).mean().item()
        ax.set_title(f"layer {layer} head {head}", fontsize=8)
        ax.set_xticks(range(len(line)), labels, fontsize=5)
        ax.set_yticks(range(len(line)), labels, fontsize=5)
fig.suptitle(f"trained attention on {line!r}", fontsize=9)
plt.tight_layout()
plt.show()
best = max(previous_token_weight, key=previous_token_weight.get)
print(f"the most 'previous-character' head: layer {best[0]} head {best[1]}, "
      f"{previous_token_weight[best]:.0%} of its weight one step back (uniform would give ~{1 / 16:.0%})")  # fmt: skip

# %% [markdown]
# ## Result
#
# Our sixty-line GPT and `bestiary.build("decoder_only")` compute the same logits, the model is
# causal, and it learned more than character pairs: its validation loss must end at least
# **0.25 nats/char below the bigram model's in quick mode** (400 steps of a 2-layer model) and at
# least **0.6 below in full mode** (3,000 steps of a 4-layer, 0.8M-parameter model). The lines
# below give this run's numbers.

# %%
margin = 0.25 if QUICK else 0.6
print(f"GPT {final['val']:.3f} vs bigram {bigram_val:.3f}: {bigram_val - final['val']:.2f} nats/char better "
      f"(required: {margin}); perplexity {math.exp(final['val']):.2f} vs {math.exp(bigram_val):.2f}")  # fmt: skip
assert final["val"] < bigram_val - margin, (final["val"], bigram_val)

# %% [markdown]
# ## Experiments to try
# - Cheat on purpose: delete the `masked_fill` line of `CausalSelfAttention` and train *our* GPT.
#   The loss collapses towards 0 while samples are garbage: the answer sits one position ahead.
# - Swap in the Llama recipe (`position="rope", norm="rmsnorm", mlp="swiglu"`) at the same size:
#   is validation loss lower after the same number of steps?
# - Double the context (`BLOCK = 128`): does the loss at late positions improve?
# - Make the bigram model a trigram (counts of `(a, b) → c`): how much of the gap closes?
# - Sample at temperature 0.5 and 1.2 from the final model and compare (see T05).
