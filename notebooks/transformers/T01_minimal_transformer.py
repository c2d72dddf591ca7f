# %% [markdown]
# # T01 · A minimal transformer, piece by piece
#
# A transformer layer is only a few ideas stacked together: **attention** lets every position look
# at every other one and take a weighted average of what it finds; a small **feed-forward network**
# then processes each position on its own; **residual connections** and **LayerNorm** keep a deep
# stack trainable; and because attention by itself ignores order, we must tell it **where** each
# token is. We build each piece with `bestiary.layers`, check it against PyTorch, then assemble an
# encoder and train it on two toy tasks — *copy* a sequence and *reverse* it — and see which pieces
# each task really needs.
#
# ## What you'll learn
# - scaled dot-product attention, `softmax(Q Kᵀ / √d) V`, computed by hand and checked against
#   `torch.nn.functional.scaled_dot_product_attention`; what multi-head attention adds;
# - the position-wise FFN and its activations: ReLU, GELU and the gated SwiGLU;
# - three ways to encode positions: sinusoidal, learned, and rotary (RoPE), and why RoPE makes the
#   attention score depend only on the *distance* between two tokens;
# - why residuals + LayerNorm matter in a deep stack;
# - that attention without positions is permutation-equivariant: it can copy but it cannot reverse.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

import bestiary
from bestiary.data import make_copy_task, make_reverse_task
from bestiary.layers import (
    FeedForward,
    LearnedPositions,
    MultiHeadAttention,
    RotaryEmbedding,
    SinusoidalPositions,
    SwiGLU,
    scaled_dot_product_attention,
    transformer_block,
)

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

STEPS = 250 if QUICK else 1500  # training steps per model in the copy/reverse experiment

# %% [markdown]
# ## 1. Scaled dot-product attention
#
# Each position emits a **query** q ("what am I looking for?"), a **key** k ("what do I contain?")
# and a **value** v ("what do I hand over?"). Position i scores every position j with the dot
# product q_i · k_j, divided by √d so that the scores do not grow with the width d (large scores
# would saturate the softmax and kill its gradients). A softmax turns the scores of row i into
# weights that sum to one, and the output is the weighted average of the values:
#
# $$\text{Attention}(Q, K, V) = \text{softmax}\!\left(\frac{QK^\top}{\sqrt{d}}\right) V$$
#
# A **causal mask** sets the scores of future positions (j > i) to −∞ before the softmax, so a
# decoder cannot peek at the token it must predict. We compute it by hand, then check that
# Bestiary's readable path and PyTorch's fused kernel agree.

# %%
T, d = 6, 8
q, k, v = torch.randn(1, 1, T, d), torch.randn(1, 1, T, d), torch.randn(1, 1, T, d)  # (B, heads, T, d)
scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (1, 1, T, T)
weights_full = scores.softmax(-1)
weights_causal = scores.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf")).softmax(-1)
by_hand = weights_causal @ v

torch_fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
ours_manual = scaled_dot_product_attention(q, k, v, is_causal=True, manual=True)
print("max |by hand - torch| =", (by_hand - torch_fused).abs().max().item())
print("max |bestiary manual - torch| =", (ours_manual - torch_fused).abs().max().item())
assert torch.allclose(by_hand, torch_fused, atol=1e-6) and torch.allclose(ours_manual, torch_fused, atol=1e-6)

# %% [markdown]
# **What to look for:** on the left every row is a full probability distribution over all six
# positions; on the right (causal) the upper triangle is exactly zero and row 0 puts all its
# weight on itself — the first token can only see itself.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.5))
for ax, w, title in zip(axes, [weights_full, weights_causal], ["bidirectional", "causal"]):
    im = ax.imshow(w[0, 0].numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set(title=f"{title} attention weights", xlabel="key position j", ylabel="query position i")
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# ### Multi-head attention
#
# One softmax gives each position one way to mix the others. **Multi-head** attention splits the
# width d_model into `n_heads` slices, runs attention in each slice with its own projections, and
# concatenates the results, so different heads can track different relations (the previous
# token, a matching bracket, ...). `MultiHeadAttention` is exactly `torch.nn.MultiheadAttention`
# when we copy the weights over; it also supports fewer key/value heads than query heads
# (`n_kv_heads`: multi-query and grouped-query attention, used by Llama-style models).

# %%
mha = MultiHeadAttention(d_model=16, n_heads=4).eval()
ref = nn.MultiheadAttention(16, 4, batch_first=True).eval()
with torch.no_grad():  # torch stores q, k, v projections stacked in one matrix
    ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
    ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
    ref.out_proj.load_state_dict(mha.out_proj.state_dict())
x = torch.randn(2, 5, 16)
difference = (mha(x) - ref(x, x, x, need_weights=False)[0]).abs().max().item()
print(f"bestiary MHA vs torch.nn.MultiheadAttention: max difference {difference:.1e}")
assert difference < 1e-5

# %% [markdown]
# ## 2. The position-wise feed-forward network
#
# After attention has mixed information *between* positions, a two-layer MLP transforms each
# position on its own: `down(act(up(x)))`, with a hidden width d_ff ≈ 4·d_model. The original
# transformer used ReLU; BERT and GPT-2 use GELU, a smooth ReLU; Llama-style models use **SwiGLU**,
# where a second projection, passed through SiLU, *gates* the first elementwise:
# `down(silu(gate(x)) * up(x))`. SwiGLU has three matrices instead of two, so it is usually given
# d_ff ≈ 8/3·d_model to keep the same parameter count.
#
# **What to look for:** GELU and SiLU are ReLU with a soft, slightly negative elbow; the gradient
# near zero is not cut off abruptly.

# %%
z = torch.linspace(-4, 4, 200)
fig, ax = plt.subplots(figsize=(5, 3.5))
for name, fn in [("ReLU", F.relu), ("GELU", F.gelu), ("SiLU (the gate of SwiGLU)", F.silu)]:
    ax.plot(z, fn(z), label=name)
ax.set(xlabel="input", ylabel="output", title="FFN activations")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

d_model = 64
ffns = {
    "ReLU FFN (d_ff=256)": FeedForward(d_model, 4 * d_model, activation="relu"),
    "GELU FFN (d_ff=256)": FeedForward(d_model, 4 * d_model, activation="gelu"),
    "SwiGLU (d_ff=170)": SwiGLU(d_model, 170),
}
pd.DataFrame({"parameters": {name: bestiary.count_params(m) for name, m in ffns.items()}})

# %% [markdown]
# ## 3. Where is each token? Three position encodings
#
# Attention compares contents only: shuffle the input and the outputs are shuffled the same way.
# We add position information in one of three ways:
#
# - **sinusoidal** (the original transformer): a fixed vector per position made of sines and
#   cosines of geometrically spaced frequencies, added to the token embedding;
# - **learned** (BERT, GPT-2): one trainable vector per position — flexible, but it cannot go
#   beyond the longest position seen in training;
# - **rotary (RoPE)** (Llama and most recent LLMs): nothing is added; instead each pair of
#   query/key dimensions is *rotated* by an angle proportional to the position. Because rotating q
#   by angle a and k by angle b changes their dot product only through a − b, the attention score
#   depends on the **offset** between two tokens, not on where they sit.
#
# **What to look for:** left, the sinusoidal table: fast stripes in the first dimensions, slow ones
# in the last. Right, the RoPE score between one fixed query and one fixed key as a function of the
# offset, measured at three very different absolute positions: the three curves lie on top of
# each other.

# %%
table = SinusoidalPositions(64, max_seq_len=100)(100)
rope = RotaryEmbedding(32)
qv, kv = torch.randn(1, 1, 1, 32), torch.randn(1, 1, 1, 32)
offsets = np.arange(0, 40)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].imshow(table.numpy(), aspect="auto", cmap="RdBu")
axes[0].set(title="sinusoidal positions", xlabel="dimension", ylabel="position")
for start, style in [(0, "-"), (100, "--"), (1000, ":")]:
    rows = [
        (rope(qv, torch.tensor([start + o])) * rope(kv, torch.tensor([start]))).sum().item() for o in offsets
    ]
    axes[1].plot(offsets, rows, style, label=f"key at position {start}")
axes[1].set(
    title="RoPE: q·k depends only on the offset", xlabel="query position − key position", ylabel="score"
)
axes[1].legend()
plt.show()

# %%
score = lambda p, s: (rope(qv, torch.tensor([p])) * rope(kv, torch.tensor([s]))).sum().item()  # noqa: E731
assert abs(score(7, 3) - score(507, 503)) < 1e-3  # same offset, far-apart positions: same score

# %% [markdown]
# ## 4. Residuals and LayerNorm
#
# A transformer block is `x + attention(norm(x))` followed by `x + ffn(norm(x))` ("pre-norm"; the
# original paper normalised after the sum instead). The **residual** `x + ...` gives every layer
# an identity path, so the signal and its gradient pass through a deep stack even when the
# sub-layers are still random; **LayerNorm** rescales each position's vector to zero mean and unit
# variance, so no layer receives inputs of exploding size. We pass random inputs through 24
# randomly initialised blocks with and without those two ingredients and track the size of the
# activations.
#
# **What to look for:** without residuals the signal shrinks towards a constant vector (attention
# averages positions together, layer after layer), so every position ends up the same; with
# residual + norm the activations keep a steady scale and positions stay distinct.


# %%
class PlainBlock(nn.Module):
    """Attention then FFN, no residual and no norm: what not to do."""

    def __init__(self, d: int):
        super().__init__()
        self.attn, self.ffn = MultiHeadAttention(d, 4), FeedForward(d, 4 * d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.attn(x))


torch.manual_seed(0)
depth, d = 24, 64
x0 = torch.randn(8, 16, d)
stacks = {
    "no residual, no norm": [PlainBlock(d) for _ in range(depth)],
    "residual + LayerNorm (pre-norm)": [
        transformer_block(d, 4, 4 * d, causal=False, norm="layernorm", mlp="gelu") for _ in range(depth)
    ],
}
spread = {}
with torch.no_grad():
    for name, blocks in stacks.items():
        x, values = x0, []
        for blk in blocks:
            x = blk(x)
            values.append(
                max(x.std(dim=1).mean().item(), 1e-12)
            )  # how different the positions still are (floored for the log plot)
        spread[name] = values
fig, ax = plt.subplots(figsize=(6, 3.5))
for name, values in spread.items():
    ax.semilogy(range(1, depth + 1), values, marker="o", ms=3, label=name)
ax.set(xlabel="layer", ylabel="std across positions (log)", title="signal through 24 random blocks")
ax.legend()
plt.show()
assert spread["residual + LayerNorm (pre-norm)"][-1] > 10 * spread["no residual, no norm"][-1]

# %% [markdown]
# ## 5. An encoder, trained on copy and reverse
#
# Now we assemble an **encoder**: token embedding (+ positions), a stack of bidirectional
# transformer blocks, and a linear layer that predicts one output token per input position. Two
# toy tasks from `bestiary.data`: **copy** (output t = input t) and **reverse** (output t = input
# T−1−t), on sequences of 10 tokens from an alphabet of 10.
#
# Copying needs no positions: each position only has to recognise its own token. Reversing does:
# output 0 must fetch whatever sits at the *last* position, and without position information an
# attention layer cannot tell positions apart. We train the same encoder four times on *reverse*
# — no positions, sinusoidal, learned, RoPE — and once on copy without positions.


# %%
class TinyEncoder(nn.Module):
    """Embedding (+ positions) -> n bidirectional pre-norm blocks -> per-position classifier."""

    def __init__(
        self,
        vocab: int,
        d: int = 64,
        n_layers: int = 2,
        n_heads: int = 4,
        T: int = 10,
        position: str = "none",
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.position = position
        self.pos = {"sinusoidal": SinusoidalPositions(d, T), "learned": LearnedPositions(T, d)}.get(position)
        if position == "learned":  # start on the same scale as the N(0, 1) token embeddings, or
            nn.init.normal_(self.pos.weight, std=1.0)  # the tiny default init takes long to matter
        self.rope = RotaryEmbedding(d // n_heads) if position == "rope" else None
        self.blocks = nn.ModuleList(
            # no causal mask: an encoder sees the whole input; RoPE (if any) is part of the attention
            transformer_block(d, n_heads, 4 * d, causal=False, rope=self.rope, norm="layernorm", mlp="gelu")
            for _ in range(n_layers)
        )
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, T, d)
        if self.pos is not None:
            x = x + self.pos(tokens.shape[1])  # (T, d) broadcast over the batch
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x))  # (B, T, vocab)


VOCAB, T = 13, 10  # ids 0..2 are reserved (PAD/BOS/EOS) by bestiary.data; content tokens are 3..12
tasks = {"copy": make_copy_task, "reverse": make_reverse_task}


def train_encoder(task: str, position: str, steps: int = STEPS, seed: int = 0) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    src, tgt = (torch.from_numpy(a) for a in tasks[task](4096, seq_len=T, vocab_size=VOCAB, seed=seed))
    test_src, test_tgt = (
        torch.from_numpy(a) for a in tasks[task](512, seq_len=T, vocab_size=VOCAB, seed=seed + 100)
    )
    model = TinyEncoder(VOCAB, T=T, position=position).to(DEVICE)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(src), (64,))
        logits = model(src[idx].to(DEVICE))
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt[idx].to(DEVICE).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    with torch.no_grad():
        accuracy = (model(test_src.to(DEVICE)).argmax(-1).cpu() == test_tgt).float().mean().item()
    return losses, accuracy


runs = [
    ("copy", "none"),
    ("reverse", "none"),
    ("reverse", "sinusoidal"),
    ("reverse", "learned"),
    ("reverse", "rope"),
]
results = {}
for task, position in tqdm(runs, desc="training encoders"):
    results[(task, position)] = train_encoder(task, position)

# %% [markdown]
# **What to look for:** copy without positions and the three reverse runs *with* positions drop
# towards zero loss; reverse *without* positions stalls well above zero, a little below the loss of
# guessing (ln 10 ≈ 2.3): it can learn *which* tokens occur in the input, never *where* to put them.

# %%
fig, ax = plt.subplots(figsize=(7, 4))
for (task, position), (losses, _) in results.items():
    smooth = np.convolve(losses, np.ones(20) / 20, mode="valid")
    ax.plot(smooth, label=f"{task}, positions: {position}")
ax.axhline(math.log(10), color="grey", ls=":", label="chance (ln 10)")
ax.set(xlabel="step", ylabel="cross-entropy (smoothed)", title="tiny encoder on copy / reverse")
ax.legend()
plt.show()
table = pd.DataFrame(
    [{"task": t, "positions": p, "test token accuracy": acc} for (t, p), (_, acc) in results.items()]
)
table

# %% [markdown]
# ## Result
#
# Copy is solved without any position information; reverse is solved only once the model knows
# where each token is — with any of the three encodings. We assert it: copy and every
# reverse-with-positions run reach **≥ 95 % token accuracy in full mode (≥ 80 % in quick mode)**,
# and reverse without positions stays **below 40 %** (10 % is chance for a single token).

# %%
threshold = 0.80 if QUICK else 0.95
accuracy = {key: acc for key, (_, acc) in results.items()}
assert accuracy[("copy", "none")] >= threshold, accuracy
for position in ("sinusoidal", "learned", "rope"):
    assert accuracy[("reverse", position)] >= threshold, (position, accuracy)
assert accuracy[("reverse", "none")] < 0.40, accuracy
print("all assertions passed")

# %% [markdown]
# ## Experiments to try
#
# - Train on sequences of length 10 and test on length 14 (make the position tables longer):
#   which encoding degrades gracefully? (RoPE and sinusoidal can extrapolate a little; learned
#   positions have never seen positions 10–13.)
# - Replace `norm="layernorm"` with `"rmsnorm"` and `mlp="gelu"` with `"swiglu"` (the Llama recipe).
# - Use a single head (`n_heads=1`) or a single layer: is reverse still learned? How fast?
# - Add a causal mask (build the blocks with `causal=True`): why can the model no longer reverse?
# - Plot the attention weights of the trained reverse model: you should see an anti-diagonal.
