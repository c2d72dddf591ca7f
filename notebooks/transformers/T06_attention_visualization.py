# %% [markdown]
# # T06 · Attention visualization
#
# Every attention head computes a matrix of weights: for each position, how much it reads from every
# other position. Those matrices are the most direct window into what a trained transformer does —
# but a model has hundreds of heads, and looking at heatmaps "by eye" finds whatever one hopes to
# find. Here we read the attention weights out of two real pretrained models running in *our*
# implementation — SmolLM2-135M (a 30-layer Llama decoder, 9 heads per layer) and all-MiniLM-L6-v2 (a
# 6-layer BERT encoder, 12 heads per layer) — check them against `transformers`, and then find two
# kinds of heads with a **score**, not by eye: previous-token heads and induction heads
# (Olsson et al., 2022, "In-context Learning and Induction Heads", arXiv:2209.11895).
#
# ## What you'll learn
# - how to get a head's attention weights from a model: capture the layer's input, recompute
#   softmax(q kᵀ/√d) in the open (RoPE and grouped-query heads included), check against the layer's
#   own output and against `transformers`' `output_attentions=True`;
# - heatmaps per layer and head, and what common patterns look like (first-token "sinks", diagonals);
# - a previous-token score and an induction score for every head, a control that the induction score
#   must fail, and the two-step circuit they form;
# - in a bidirectional encoder: heads that read the *next* token, which a causal model cannot have.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F

import bestiary
from bestiary.layers.positions import apply_rotary
from bestiary.llm import load_minilm, load_smollm2, smollm2_files
from bestiary.llm.minilm import minilm_path

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: a few short forward passes run fine on the CPU
bestiary.seed_everything(0)

model, tok = load_smollm2()
cfg = model.config
print(f"SmolLM2: {cfg.n_layers} layers, {cfg.n_heads} query heads sharing {cfg.n_kv_heads} key/value heads, "
      f"head size {cfg.d_model // cfg.n_heads}")  # fmt: skip

# %% [markdown]
# ## 1. Getting the weights out
#
# Our `MultiHeadAttention` uses the fused `scaled_dot_product_attention`, which never materialises the
# weights. So we capture what each attention layer receives (a forward hook on every block's `mixer`;
# in this pre-norm Llama block, that is the RMS-normalised residual stream) and recompute the weights
# ourselves, in the open:
#
# $$A^{(h)} = \operatorname{softmax}\!\Big(\frac{\mathrm{RoPE}(x W_Q^{(h)})\,\mathrm{RoPE}(x W_K^{(g(h))})^\top}{\sqrt{d_h}} + M\Big),$$
#
# with $M$ the causal mask ($-\infty$ above the diagonal), RoPE the rotary position embedding (its
# library function: rotating q and k is not this lesson), and $g(h)$ the key head that query head $h$
# shares — SmolLM2 has 9 query heads and 3 key/value heads (grouped-query attention), so heads 0–2 read
# key head 0, heads 3–5 key head 1, heads 6–8 key head 2.
#
# Two checks: (1) $A V$ through the output projection reproduces what the layer actually output, so
# these are the weights our model used; (2) they equal `transformers`' own attention weights for the
# same checkpoint (`output_attentions=True`, eager attention) — the oracle.

# %%
captured_in, captured_out = {}, {}


def add_hooks(net):
    """Record every attention layer's input x (and mask) and output, by layer index."""
    for i, block in enumerate(net.blocks):
        block.mixer.register_forward_pre_hook(
            lambda mod, args, kwargs, i=i: captured_in.__setitem__(i, (args[0], kwargs.get("mask"))),
            with_kwargs=True,
        )
        block.mixer.register_forward_hook(lambda mod, args, out, i=i: captured_out.__setitem__(i, out))


def attention_weights(attn, x, causal, pad_mask=None):
    """(B, H, T, T) attention weights of layer `attn` (a MultiHeadAttention) on its input x (B, T, D)."""
    B, T, _ = x.shape
    q = attn.q_proj(x).view(B, T, attn.n_heads, attn.head_dim).transpose(1, 2)  # (B, H, T, Dh)
    k = attn.k_proj(x).view(B, T, attn.n_kv_heads, attn.head_dim).transpose(1, 2)  # (B, Hkv, T, Dh)
    if attn.rope is not None:
        cos, sin = attn.rope.cos_sin(torch.arange(T))
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
    k = k.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)  # query head h reads key head h // 3
    scores = q @ k.transpose(-2, -1) / math.sqrt(attn.head_dim)  # (B, H, T, T)
    if causal:
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    if pad_mask is not None:  # (B, T), True = a real token: nobody attends to padding
        scores = scores.masked_fill(~pad_mask.bool()[:, None, None, :], float("-inf"))
    return scores.softmax(-1)


def all_attention(net, *inputs, causal):
    """Run `net` and return the attention weights of every layer: (B, layers, heads, T, T)."""
    with torch.no_grad():
        output = net(*inputs)
        weights = []
        for i, block in enumerate(net.blocks):
            x, mask = captured_in[i]
            weights.append(attention_weights(block.mixer, x, causal, mask))
    return torch.stack(weights, 1), output


add_hooks(model)
sentence = "The quick brown fox jumps over the lazy dog. The lazy dog sleeps."
ids = torch.tensor([tok(sentence).input_ids])
labels = [tok.decode(t) for t in ids[0]]
A_sentence, _ = all_attention(model, ids, causal=True)  # (1, 30, 9, T, T)

with torch.no_grad():  # check 1: the weights reproduce the layer's own output, in every layer
    self_err = 0.0
    for i, block in enumerate(model.blocks):
        attn, x = block.mixer, captured_in[i][0]
        v = attn.v_proj(x).view(1, -1, attn.n_kv_heads, attn.head_dim).transpose(1, 2)
        v = v.repeat_interleave(attn.n_heads // attn.n_kv_heads, dim=1)
        out = attn.out_proj((A_sentence[:, i] @ v).transpose(1, 2).reshape(1, len(labels), -1))
        self_err = max(self_err, (out - captured_out[i]).abs().max().item())

import transformers  # noqa: E402  (the oracle only)

reference = transformers.LlamaForCausalLM.from_pretrained(
    smollm2_files(), dtype=torch.float32, attn_implementation="eager"
).eval()
with torch.no_grad():
    hf_attn = torch.stack(reference(ids, output_attentions=True).attentions, 1)  # (1, 30, 9, T, T)
oracle_err = (hf_attn - A_sentence).abs().max().item()
del reference
print(f"{len(labels)} tokens: {labels}")
print(
    f"A V through out_proj vs the layer's output: {self_err:.1e};  our weights vs transformers': {oracle_err:.1e}"
)
assert self_err < 1e-4 and oracle_err < 1e-4

# %% [markdown]
# ## 2. Heatmaps per layer and head
#
# All 9 heads of six layers spread over the depth of the model, on the sentence above. Row $t$ of a
# heatmap is where position $t$ reads from (each row sums to 1; the upper triangle is the causal mask).
#
# **What to look for:** in most heads beyond layer 0, the first column is bright — the first token
# soaks up the attention a head has nowhere better to put (an "attention sink", Xiao et al., 2023,
# arXiv:2309.17453); in layers 3 and 8 many heads also share a second bright column on one word. In
# layer 0 attention is spread more evenly. Some heads (the last layer's, for instance) draw a sharp
# line along the diagonal: each token reads itself or its predecessor — at this size the eye cannot
# tell which, and it cannot look at all 270 heads. Eyeballing stops here: section 3 scores every head.

# %%
show_layers = [0, 3, 8, 14, 20, 29]
fig, axes = plt.subplots(len(show_layers), cfg.n_heads, figsize=(13, 9.2))
for r, layer in enumerate(show_layers):
    for h in range(cfg.n_heads):
        ax = axes[r, h]
        ax.imshow(A_sentence[0, layer, h], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(f"head {h}", fontsize=9)
        if h == 0:
            ax.set_ylabel(f"layer {layer}", fontsize=9)
fig.suptitle(f"SmolLM2 attention on “{sentence}” (rows: queries, columns: keys)", fontsize=10)
plt.tight_layout()
plt.show()
sink = A_sentence[0, :, :, 1:, 0].mean(-1)  # (layers, heads): attention from positions >= 1 to token 0
print(f"median over all {sink.numel()} heads of the attention mass on the first token: {sink.median():.2f} "
      f"(a uniform causal head would give {np.mean([1 / (t + 1) for t in range(1, len(labels))]):.2f})")  # fmt: skip

# %% [markdown]
# ## 3. Previous-token and induction heads, by score
#
# **Previous-token score** of a head: the mean attention from position $t$ to position $t-1$, over
# all $t \ge 1$ of a few natural sentences. A head that always reads the previous token scores 1.
#
# **Induction score.** An induction head completes patterns: having seen "… A B …", when A occurs
# again it attends to the token *after* the earlier A (to B) and copies it. The clean test: a sequence
# of $L$ random tokens repeated twice, $[\,a_1 \dots a_L\; a_1 \dots a_L\,]$ (after a start token). At the
# second occurrence of $a_i$ (position $L+i$), an induction head attends to the first occurrence of
# $a_{i+1}$ (position $i+1$): the score is the mean attention along that off-diagonal. Random tokens
# mean no knowledge of language can help: only the repetition can.
#
# **Control.** The same score on the same positions, but the second half is *other* random tokens.
# A head whose score came from position alone (a fixed offset) would score the same on both.
#
# Quick mode uses 2 sentences and 2 random sequences of length 16; full mode 6 sentences and 16
# sequences of length 32.

# %%
sentences = [
    "The quick brown fox jumps over the lazy dog. The lazy dog sleeps.",
    "When Mary and John went to the store, John gave a drink to Mary.",
    "Attention heads read from other positions and write into the residual stream.",
    "In the morning the fishermen pulled their boats onto the sand and mended the nets.",
    "She opened the letter, read it twice, and then put it back into the drawer without a word.",
    "A transformer layer has an attention block followed by a small multilayer perceptron.",
]
sentences = sentences[:2] if QUICK else sentences
N_SEQ, L = (2, 16) if QUICK else (16, 32)

prev_score = torch.zeros(cfg.n_layers, cfg.n_heads)
for s in sentences:
    A, _ = all_attention(model, torch.tensor([tok(s).input_ids]), causal=True)
    t = torch.arange(1, A.shape[-1])
    prev_score += A[0][..., t, t - 1].mean(-1) / len(sentences)

g = torch.Generator().manual_seed(0)
first = torch.randint(1000, 20000, (N_SEQ, L), generator=g)  # ordinary vocabulary, no special tokens
other = torch.randint(1000, 20000, (N_SEQ, L), generator=g)
start = torch.full((N_SEQ, 1), tok.bos_token_id)
repeated = torch.cat([start, first, first], 1)  # (N, 1 + 2L)
control = torch.cat([start, first, other], 1)
A_both, logits = all_attention(model, torch.cat([repeated, control]), causal=True)
A_rep, A_ctl = A_both[:N_SEQ], A_both[N_SEQ:]
query = torch.arange(L + 1, 2 * L)  # the second occurrence of a_1 .. a_{L-1}
key = query - L + 1  # the first occurrence of the token after it
induction = A_rep[..., query, key].mean((0, -1))  # (layers, heads)
induction_ctl = A_ctl[..., query, key].mean((0, -1))

# the behaviour an induction head enables: the model predicts the repeated half
nll = F.cross_entropy(logits[:N_SEQ, :-1].transpose(1, 2), repeated[:, 1:], reduction="none")  # (N, 2L)
loss_first, loss_second = nll[:, 1:L].mean().item(), nll[:, L + 1 :].mean().item()


def top(score, k=5):
    flat = score.flatten().argsort(descending=True)[:k]
    return [(int(i) // cfg.n_heads, int(i) % cfg.n_heads, round(score.flatten()[i].item(), 2)) for i in flat]


best_ind, best_prev = top(induction, 1)[0], top(prev_score, 1)[0]
print("top previous-token heads (layer, head, score):", top(prev_score))
print("top induction heads (layer, head, score):     ", top(induction))
print(f"best induction head L{best_ind[0]}H{best_ind[1]}: {best_ind[2]:.2f} on repeats, "
      f"{induction_ctl[best_ind[:2]]:.3f} on the control; median head {induction.median():.3f}")  # fmt: skip
print(
    f"next-token loss on random tokens: {loss_first:.2f} nats (first half), {loss_second:.2f} (repeated half)"
)

# %% [markdown]
# **What to look for:** three maps of all 270 heads (rows: layers, columns: heads; same colour scale).
# Previous-token heads are few and scattered, several in early layers. Induction heads are few and
# bright, in the middle-to-late layers — all in layers *after* the strongest previous-token heads, as
# the circuit requires (section 4). The control map is dark everywhere: no head reaches its position
# by offset alone.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 6.5), sharey=True)
maps = {
    "previous-token score (sentences)": prev_score,
    "induction score (repeated random tokens)": induction,
    "same score, control (no repeat)": induction_ctl,
}
for ax, (title, score) in zip(axes, maps.items()):
    im = ax.imshow(score, cmap="magma", vmin=0, vmax=1, aspect="auto")
    ax.set(title=title, xlabel="head", xticks=range(cfg.n_heads))
    ax.title.set_fontsize(9)
axes[0].set_ylabel("layer")
fig.colorbar(im, ax=axes, shrink=0.6)
plt.show()

# %% [markdown]
# ## 4. The top heads, up close
#
# An induction head cannot work alone: to find "the token after the earlier A", the key at that
# position must already carry "my previous token was A". A previous-token head in an *earlier* layer
# writes exactly that into the residual stream (Olsson et al.'s two-head circuit). Below: the best
# previous-token head on a sentence, and the best induction head on a repeated sequence and on its
# control.
#
# **What to look for:** left, a bright line just below the diagonal (each token reads its
# predecessor). Middle, the induction head on the repeated sequence: in the second half (lower rows)
# a bright stripe parallel to the diagonal, $L-1$ positions to its left — each token reads the token
# that followed its earlier occurrence; in the first half, where nothing has repeated yet, it parks on
# the first token. Right, the same head on the control: no stripe.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 5))
l, h, _ = best_prev
axes[0].imshow(A_sentence[0, l, h], cmap="viridis", vmin=0, vmax=1)
axes[0].set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
axes[0].set_yticks(range(len(labels)), labels, fontsize=7)
axes[0].set_title(f"previous-token head L{l}H{h} (score {prev_score[l, h]:.2f})", fontsize=10)
l, h, _ = best_ind
for ax, A, name in ((axes[1], A_rep, "repeated"), (axes[2], A_ctl, "control")):
    ax.imshow(A[0, l, h], cmap="viridis", vmin=0, vmax=1)
    ax.axhline(L + 0.5, color="w", lw=0.6, ls=":")
    score = (induction if name == "repeated" else induction_ctl)[l, h]
    ax.set(title=f"induction head L{l}H{h}, {name} (score {score:.2f})", xlabel="key position",
           ylabel="query position")  # fmt: skip
    ax.title.set_fontsize(10)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Claims (SmolLM2)
#
# The same thresholds in quick and full mode:
#
# - our recomputed weights reproduce the layers' outputs and match `transformers` to 1e-4;
# - the best induction head scores at least 0.4, at least 10× its own score on the control and at
#   least 10× the median head's induction score;
# - the best previous-token head scores at least 0.5 and sits in an earlier layer than the best
#   induction head;
# - on the repeated half of the random sequences the model's next-token loss is less than a third
#   of its loss on the first half (it copies, which is what induction heads are for).

# %%
assert best_ind[2] >= 0.4, best_ind
assert best_ind[2] >= 10 * induction_ctl[best_ind[:2]].item(), induction_ctl[best_ind[:2]]
assert best_ind[2] >= 10 * induction.median().item(), induction.median()
assert best_prev[2] >= 0.5 and best_prev[0] < best_ind[0], (best_prev, best_ind)
assert loss_second < loss_first / 3, (loss_first, loss_second)

# %% [markdown]
# ## 5. A bidirectional encoder: MiniLM
#
# all-MiniLM-L6-v2 is a BERT encoder: no causal mask, every token reads every other, in both
# directions. We feed it a sentence pair the way BERT was trained, `[CLS] first [SEP] second [SEP]`
# with segment ids, capture its attention layers the same way, and check against `transformers`'
# `BertModel`. (BERT's blocks are post-norm: the hook sees the residual stream itself.)

# %%
encoder, enc_tok = load_minilm()
add_hooks(encoder)
pair = enc_tok("The cat sat on the mat.", "A kitten was resting on the rug.", return_tensors="pt")
enc_labels = enc_tok.convert_ids_to_tokens(pair["input_ids"][0])
A_enc, _ = all_attention(encoder, pair["input_ids"], None, pair["token_type_ids"], causal=False)
bert = transformers.BertModel.from_pretrained(str(minilm_path()), attn_implementation="eager").eval()
with torch.no_grad():
    hf_enc = torch.stack(bert(**pair, output_attentions=True).attentions, 1)  # (1, 6, 12, T, T)
enc_err = (hf_enc - A_enc).abs().max().item()
print(f"{len(enc_labels)} tokens: {enc_labels}")
print(f"our MiniLM attention vs transformers': {enc_err:.1e}")
assert enc_err < 1e-4

# %% [markdown]
# **What to look for:** all 72 heads (6 layers × 12). No triangle: the maps are full. Bright
# *columns* on the `[CLS]` and `[SEP]` tokens in many heads (they act as sinks, as the first token
# did in SmolLM2); some heads with a line just *below* the diagonal (previous token) and some with a
# line just *above* it (next token) — the latter is impossible in a causal model.

# %%
n_layers_enc, n_heads_enc = A_enc.shape[1], A_enc.shape[2]
fig, axes = plt.subplots(n_layers_enc, n_heads_enc, figsize=(14, 7.4))
for layer in range(n_layers_enc):
    for h in range(n_heads_enc):
        ax = axes[layer, h]
        ax.imshow(A_enc[0, layer, h], cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks([])
        ax.set_yticks([])
        if layer == 0:
            ax.set_title(f"h{h}", fontsize=8)
        if h == 0:
            ax.set_ylabel(f"layer {layer}", fontsize=8)
fig.suptitle("MiniLM attention on a sentence pair, every layer and head", fontsize=10)
plt.tight_layout()
plt.show()

# %% [markdown]
# ### A claim about the encoder: heads that look ahead
#
# Score every MiniLM head the same way as before, both directions: mean attention from $t$ to $t-1$
# and from $t$ to $t+1$ (over the real tokens between `[CLS]` and the last `[SEP]`). Thresholds (no
# quick/full difference: one sentence pair): the best next-token head scores at least 0.5 — a head
# that spends most of its attention on the *following* token, something no head of SmolLM2 can do
# (its causal mask gives that attention weight exactly 0) — and so does the best previous-token head.

# %%
t = torch.arange(1, len(enc_labels) - 1)  # the tokens between [CLS] and the last [SEP]
enc_prev = A_enc[0][..., t, t - 1].mean(-1)  # (6, 12)
enc_next = A_enc[0][..., t, t + 1].mean(-1)
bp, bn = enc_prev.flatten().argmax().item(), enc_next.flatten().argmax().item()
print(f"best previous-token head L{bp // n_heads_enc}H{bp % n_heads_enc}: {enc_prev.max():.2f};  "
      f"best next-token head L{bn // n_heads_enc}H{bn % n_heads_enc}: {enc_next.max():.2f}")  # fmt: skip
print(f"SmolLM2's largest attention weight on a later token: {A_sentence.triu(1).max():.1f}")
assert enc_next.max() >= 0.5 and enc_prev.max() >= 0.5, (enc_next.max(), enc_prev.max())
assert A_sentence.triu(1).max() == 0

# %% [markdown]
# ## Experiments to try
# - Ablate the best induction head (zero its rows of `out_proj`'s input) and measure the loss on the
#   repeated half again. Then ablate the best previous-token head instead. Which hurts more?
# - Vary $L$ (4 … 64): from what length does the induction score of the top head saturate?
# - Score "duplicate-token" heads: attention from a token's second occurrence to its *first*
#   occurrence (offset $L$ instead of $L-1$). Which layers hold them?
# - Run the scores on SmolLM2 in bfloat16 (`load_smollm2(dtype=torch.bfloat16)`): do the rankings change?
# - Replace the sentence pair by two unrelated sentences: does MiniLM's attention across the `[SEP]`
#   change?
# - Train T02's small GPT and compute its induction scores: does a 4-layer character model have one?
