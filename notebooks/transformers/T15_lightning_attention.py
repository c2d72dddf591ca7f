# %% [markdown]
# # T15 · Lightning attention: linear-time attention, block by block
#
# Softmax attention compares every query with every earlier key: O(T²) work for T tokens.
# Linear attention with decay drops the softmax, and then the output at t is q_t · S_t with a
# running state S_t = λ S_{t−1} + k_t v_tᵀ, a d × d matrix whatever the length. Computed token by
# token that is a slow Python loop; computed as one masked T × T matmul it is quadratic again.
# **Lightning Attention-2** (Qin et al., 2024, arXiv:2401.04658; the attention of TransNormerLLM
# and MiniMax-01) cuts the sequence into blocks of C tokens and does each block in two dense
# pieces: ordinary masked attention *inside* the block, plus the decayed state of everything
# *before* it. We write that algorithm, check it against the library and the naive quadratic form,
# measure how its cost grows with T next to softmax, and look at how the two pieces share the
# output in a model.
#
# ## What you'll learn
# - The lightning block algorithm: intra-block masked attention with decay λ^(t−s), plus an
#   inter-block state KV carried forward and decayed by λ^C per block.
# - Why it is linear in T (and what FlashAttention already fixes for softmax: memory, not time).
# - How to measure operation counts, saved-for-backward memory and wall time, and which of them to
#   trust on a busy machine.
# - In a Lightning-attention language model: when the output comes from inside the block and when
#   from the carried state, layer by layer.

# %%
import math
import time

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

import bestiary
from bestiary.data import get_lm_batch, load_shakespeare
from bestiary.layers.attention import scaled_dot_product_attention
from bestiary.layers.linear_attention import chunkwise_parts, linear_attention
from bestiary.tokenizers import CharTokenizer

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
torch.set_num_threads(1)  # stable timings on a shared CPU (see benchmarks/attention_long_context.py)

# %% [markdown]
# ## 1. The block algorithm, written out
#
# Per head, with a fixed decay λ in (0, 1], the output is o_t = Σ_{s ≤ t} λ^(t−s) (q_t · k_s) v_s.
# Split positions into blocks of C. For a position t inside block b (local index i = 0..C−1):
#
# - **intra-block**: the keys of its own block, s ≤ t: [(Q_b K_bᵀ) ⊙ M] V_b with the C × C decay
#   mask M_ij = λ^(i−j) for j ≤ i, 0 above the diagonal;
# - **inter-block**: all earlier blocks at once, through the state KV (d_k × d_v) they left:
#   λ^(i+1) q_t KV. The factor λ^(i+1) is the decay from the end of the previous block to t;
# - then the state moves on: KV ← λ^C KV + (λ^(C−1−j) K_b)ᵀ V_b (each key decayed to the block end).
#
# Work per block: two C × C × d matmuls and two d × d × C ones; T / C blocks: O(T (C + d) d).
# And the naive form to check it against: the full T × T decayed, masked score matrix.


# %%
def lightning_blocks(q, k, v, log_decay, block: int):
    """q, k (B, H, T, d_k), v (B, H, T, d_v), log_decay (H,) = log λ_h.
    -> (intra, inter), each (B, H, T, d_v); the output is their sum."""
    B, H, T, d_k = q.shape
    lam = log_decay.exp().view(H, 1, 1)  # (H, 1, 1)
    i = torch.arange(block, device=q.device)
    gap = i[:, None] - i[None, :]  # (C, C): t - s inside a block
    mask = torch.where(gap >= 0, lam ** gap.clamp_min(0), 0.0)  # (H, C, C): λ^(t-s) for s <= t
    kv = q.new_zeros(B, H, d_k, v.shape[-1])  # the state of all earlier blocks
    intra, inter = [], []
    for start in range(0, T, block):
        qb, kb, vb = (x[:, :, start : start + block] for x in (q, k, v))  # (B, H, c, d)
        c = qb.shape[2]  # the last block may be shorter
        intra.append(((qb @ kb.transpose(-1, -2)) * mask[:, :c, :c]) @ vb)
        inter.append(lam ** (i[:c] + 1)[:, None] * (qb @ kv))  # (H, c, 1) * (B, H, c, d_v)
        kv = lam**c * kv + (kb * lam ** (c - 1 - i[:c])[:, None]).transpose(-1, -2) @ vb
    return torch.cat(intra, dim=2), torch.cat(inter, dim=2)


def naive_decayed_attention(q, k, v, log_decay):
    """The O(T^2) definition: ((Q Kᵀ) ⊙ D) V with D_ts = λ^(t-s) for s <= t, else 0."""
    T = q.shape[2]
    t = torch.arange(T, device=q.device)
    gap = t[:, None] - t[None, :]
    decay = torch.where(gap >= 0, log_decay.exp().view(-1, 1, 1) ** gap.clamp_min(0), 0.0)  # (H, T, T)
    return ((q @ k.transpose(-1, -2)) * decay) @ v


B, H, T, D_HEAD, C = 2, 4, 200, 16, 32  # T not a multiple of C: the last block is short
q, k, v = (F.silu(torch.randn(B, H, T, D_HEAD, dtype=torch.float64)) for _ in range(3))
log_decay = -torch.tensor([0.5, 0.1, 0.02, 0.0], dtype=torch.float64)  # one head with no decay at all
intra, inter = lightning_blocks(q, k, v, log_decay, C)
lib_intra, lib_inter, _ = chunkwise_parts(q, k, v, log_decay, chunk_size=C)
lib_out, _ = linear_attention(q, k, v, log_decay, mode="chunkwise", chunk_size=C)
naive = naive_decayed_attention(q, k, v, log_decay)
errors = {
    "ours vs naive O(T²)": (intra + inter - naive).abs().max().item(),
    "ours vs library output": (intra + inter - lib_out).abs().max().item(),
    "intra vs library intra": (intra - lib_intra).abs().max().item(),
    "inter vs library inter": (inter - lib_inter).abs().max().item(),
}
for name, err in errors.items():
    print(f"{name:24s} max |difference| = {err:.1e}  (outputs up to {naive.abs().max():.0f})")
    assert err < 1e-9 * naive.abs().max()

# %% [markdown]
# The library's `LightningAttention` layer (the mixer of `bestiary.build("lightning_attention")`)
# makes q, k, v with one linear layer and a swish, uses TransNormerLLM's per-layer, per-head decays,
# and exposes the two parts as `contributions(x)`. Same numbers from our function:

# %%
lm = bestiary.build_lm(
    "lightning_attention", vocab_size=64, d_model=64, n_layers=2, n_heads=4, d_ff=128, chunk_size=C
)
layer = lm.blocks[0].mixer
x = torch.randn(2, 100, 64)
with torch.no_grad():
    qkv = F.silu(layer.qkv_proj(x)).view(2, 100, 3, 4, 16).permute(2, 0, 3, 1, 4)  # (3, B, H, T, Dh)
    ours = lightning_blocks(*qkv, layer.log_decay().float(), C)
    theirs = layer.contributions(x)
err = max((a - b).abs().max().item() for a, b in zip(ours, theirs))
print(f"layer 0 decays λ_h = {layer.log_decay().exp().numpy().round(4)}; max |ours - library| = {err:.1e}")
assert err < 1e-4

# %% [markdown]
# ## 2. Cost against length: softmax vs lightning
#
# Three causal attentions on the same q, k, v (batch 1, 4 heads, head size 64, float32, one thread):
#
# - **softmax, written out**: softmax(q kᵀ/√d + mask) v with plain matmuls, the T × T matrix stored;
# - **softmax, SDPA**: PyTorch's fused kernel (FlashAttention-style on CPU: it walks over tiles of
#   keys and never stores the T × T matrix, but still does O(T²) work);
# - **lightning**: the library's chunkwise form, blocks of 64.
#
# For each length we measure forward + backward three ways:
#
# - **operations**: floating-point operations counted by `torch.utils.flop_counter` (matmuls). It
#   does not see inside SDPA's fused kernel, so softmax's count is taken on the written-out form,
#   which does the same products. Exact and reproducible.
# - **memory**: bytes of the tensors autograd saves for the backward pass (hooked with
#   `torch.autograd.graph.saved_tensors_hooks`, each storage counted once, q, k, v themselves not
#   counted): what a training step must hold on to. Exact and reproducible.
# - **time**: the fastest of a few passes after a warm-up (2 in quick mode, 5 in full). On a quiet machine this is the number that
#   matters; on a shared, loaded CPU (ours runs several jobs on 2 cores) it jitters by tens of
#   percent, so we plot and print it but **assert on the counts**.

# %%
HEADS, HEAD_DIM, BLOCK = 4, 64, 64
LENGTHS = [128, 256, 512] if QUICK else [256, 512, 1024, 2048, 4096]
REPEATS = 2 if QUICK else 5
DECAY = -torch.tensor([0.25, 0.0625, 0.0156, 0.0039])  # ALiBi-like slopes for 4 heads


def softmax_manual(q, k, v):
    return scaled_dot_product_attention(q, k, v, is_causal=True, manual=True)


def softmax_sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def lightning(q, k, v):
    return linear_attention(q, k, v, DECAY, mode="chunkwise", chunk_size=BLOCK)[0]


METHODS = {"softmax (written out)": softmax_manual, "softmax (SDPA)": softmax_sdpa, "lightning": lightning}


def inputs(T: int):
    g = torch.Generator().manual_seed(0)
    return [F.silu(torch.randn(1, HEADS, T, HEAD_DIM, generator=g)).requires_grad_() for _ in range(3)]


def counts(fn, T: int) -> tuple[int, int]:
    """One forward + backward at length T: (operations counted, bytes saved for the backward)."""
    q, k, v = inputs(T)
    skip = {t.untyped_storage().data_ptr() for t in (q, k, v)}  # the inputs exist anyway
    storages = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            storages[ptr] = t.untyped_storage().nbytes()  # each storage once (views share it)
        return t

    with FlopCounterMode(display=False) as counter:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn(q, k, v)
        out.sum().backward()
    return counter.get_total_flops(), sum(storages.values())


def seconds(fn, T: int) -> float:
    """The fastest of REPEATS forward + backward passes after a warm-up: on a loaded machine the
    minimum is the least disturbed estimate (other jobs only ever add time)."""
    q, k, v = inputs(T)
    fn(q, k, v).sum().backward()
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn(q, k, v).sum().backward()
        times.append(time.perf_counter() - start)
    return min(times)


cost = {name: {"flops": [], "bytes": [], "seconds": []} for name in METHODS}
for T in tqdm(LENGTHS, desc="lengths"):
    for name, fn in METHODS.items():
        flops, saved = counts(fn, T)
        if name != "softmax (SDPA)":  # the counter does not see inside the fused kernel (it says 0)
            cost[name]["flops"].append(flops)
        cost[name]["bytes"].append(saved)
        cost[name]["seconds"].append(seconds(fn, T))
print(f"{'':22s}" + "".join(f"{'T=' + str(T):>26s}" for T in LENGTHS))
for name, c in cost.items():
    flops = c["flops"] or [float("nan")] * len(LENGTHS)
    cells = "".join(
        f"{f / 1e9:7.2f} GF {b / 2**20:6.1f} MiB {s * 1e3:5.0f} ms"
        for f, b, s in zip(flops, c["bytes"], c["seconds"])
    )
    print(f"{name:22s}{cells}")

# %% [markdown]
# **What to look for:** three log-log panels against T; a slope of 1 is linear growth, a slope of
# 2 quadratic. *Operations*: the two lines start close at the shortest length (lightning's per-token
# work ~ C + d is within a factor of about two of softmax's ~ T there), then softmax's, twice as
# steep, pulls away.
# *Saved memory*: the written-out softmax is the steep one (the T × T weights): it starts below
# lightning (which keeps its per-block matrices and states) and crosses it around T = 256; SDPA and
# lightning are parallel lines (both linear): the fused kernel already solved softmax's memory
# problem, only its work stays quadratic. *Time*: the same story with noise; on a quiet machine
# the softmax curves end steeper than lightning's, on a loaded one single points jump around
# (which is why the claim below is on the counts).

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
for name, c in cost.items():
    if c["flops"]:
        axes[0].plot(LENGTHS, [f / 1e9 for f in c["flops"]], "o-", label=name)
    axes[1].plot(LENGTHS, [b / 2**20 for b in c["bytes"]], "o-", label=name)
    axes[2].plot(LENGTHS, [s * 1e3 for s in c["seconds"]], "o-", label=name)
for ax, ylabel in zip(
    axes, ["GFLOP (forward + backward)", "MiB saved for backward", "ms (forward + backward)"]
):
    ax.set_xscale("log", base=2)
    ax.set(yscale="log", xlabel="sequence length T", ylabel=ylabel)
    ax.set_xticks(LENGTHS, [str(T) for T in LENGTHS])
    ax.minorticks_off()
    ax.legend(fontsize=8)
axes[0].set_title("operations")
axes[1].set_title("memory")
axes[2].set_title("time (1 thread)")
plt.tight_layout()
plt.show()


def growth(values: list[float]) -> float:
    return values[-1] / values[-2]  # from the second-longest to the longest length (2x)


print(f"growth from T={LENGTHS[-2]} to T={LENGTHS[-1]} (2x):")
for name, c in cost.items():
    f = f"{growth(c['flops']):.2f}x" if c["flops"] else "  -  "
    print(
        f"  {name:22s} operations {f}   memory {growth(c['bytes']):.2f}x   time {growth(c['seconds']):.2f}x"
    )

# %% [markdown]
# ### The claim
#
# Doubling T (the two longest lengths, in both modes) must multiply lightning's operations and
# saved memory by 1.8–2.2 (linear), softmax's operations by at least 3.5 (quadratic), the
# written-out softmax's memory by at least 3 (quadratic, plus linear terms), and SDPA's memory by
# at most 2.2 (linear). Time is printed above but not asserted (see section 2).

# %%
lin, sm, sdpa = cost["lightning"], cost["softmax (written out)"], cost["softmax (SDPA)"]
assert 1.8 <= growth(lin["flops"]) <= 2.2 and 1.8 <= growth(lin["bytes"]) <= 2.2
assert growth(sm["flops"]) >= 3.5 and growth(sm["bytes"]) >= 3.0
assert growth(sdpa["bytes"]) <= 2.2

# %% [markdown]
# ## 3. Intra- vs inter-block: who writes the output?
#
# In a trained Lightning-attention language model, split each layer's attention output into its
# two parts with `contributions(x)` and compare their sizes (the norm of each head's output vector,
# averaged over heads and over a batch of text) at every position.
#
# Two things set the split. *Position in the block*: the first token of a block has one key of its
# own and the whole past in the state; the last has C keys of its own. *The decay*: TransNormerLLM
# gives every layer its own decays, λ_h = exp(−m_h (1 − l/(L−1))) with ALiBi's slopes m_h, so the
# bottom layer forgets within tens of tokens and the top layer (λ = 1) not at all.
#
# We train a 2-layer, 64-wide model on Shakespeare, blocks of 32 (quick mode: 15 steps, just
# enough to leave the random start; full mode: 600 steps).

# %%
text = load_shakespeare(300_000)
tok = CharTokenizer.train(text)
data = torch.tensor(tok.encode(text), dtype=torch.long)
CHUNK, SEQ = 32, 256
STEPS = 15 if QUICK else 600
bestiary.seed_everything(0)
model = bestiary.build_lm(
    "lightning_attention",
    vocab_size=tok.vocab_size,
    d_model=64,
    n_layers=2,
    n_heads=4,
    d_ff=128,
    chunk_size=CHUNK,
).to(DEVICE)
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
gen = torch.Generator().manual_seed(0)
for _ in tqdm(range(STEPS), desc="training"):
    xb, yb = get_lm_batch(data, 128, 16, generator=gen, device=DEVICE)
    loss = F.cross_entropy(model(xb).flatten(0, 1), yb.flatten())
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
uniform = math.log(tok.vocab_size)
print(f"{STEPS} steps, last training loss {loss.item():.2f} nats/char (uniform: {uniform:.2f})")

# %%
xb, _ = get_lm_batch(data, SEQ, 8, generator=torch.Generator().manual_seed(1), device=DEVICE)
parts = {}
with torch.no_grad():
    h = model.tok_embed(xb)
    for i, block in enumerate(model.blocks):
        intra, inter = block.mixer.contributions(block.mixer_norm(h))  # what the layer's attention sees
        parts[i] = (intra.norm(dim=-1), inter.norm(dim=-1))  # (B, H, T) each
        h = block(h)
for i in parts:
    print(f"layer {i}: decays λ = {model.blocks[i].mixer.log_decay().exp().numpy().round(4)}")

# %% [markdown]
# **What to look for:** left, the bottom layer: in the first block there is no past, so the
# inter-block part (orange) is exactly 0; afterwards it jumps up at each block start (dotted
# lines) and fades through the block (its state is decayed by λ^(i+1), and three of its four heads
# forget within tens of tokens), while the intra-block part (blue) grows as the block fills: a
# sawtooth in opposite phases, the two of comparable size. Middle, the top layer (λ = 1, nothing
# fades): the state sums the whole past, so the inter part climbs block after block and dwarfs the
# intra part (the SRMSNorm after the attention brings the sum back to a fixed scale). Right, the
# inter-block share averaged over blocks 2.., by position in the block: falling within the block in
# both layers, and higher for the top layer everywhere.

# %%
fig, axes = plt.subplots(1, 3, figsize=(15, 4))
positions = torch.arange(SEQ)
share = {}
for i, ax in zip(parts, axes[:2]):
    intra_n, inter_n = (p.mean(dim=(0, 1)).cpu() for p in parts[i])  # (T,)
    ax.plot(positions, intra_n, label="intra-block")
    ax.plot(positions, inter_n, label="inter-block (state)")
    for b in range(CHUNK, SEQ, CHUNK):
        ax.axvline(b, color="gray", lw=0.5, ls=":")
    ax.set(xlabel="position", ylabel="mean |contribution| per head", title=f"layer {i}")
    ax.legend(fontsize=8)
    ratio = (parts[i][1] / (parts[i][0] + parts[i][1])).mean(dim=(0, 1)).cpu()  # (T,)
    share[i] = ratio[CHUNK:].view(-1, CHUNK).mean(0)  # blocks 1.. (block 0 has no past): by position in block
    axes[2].plot(range(CHUNK), share[i], "o-", ms=3, label=f"layer {i}")
axes[2].set(
    xlabel="position inside the block",
    ylabel="inter / (intra + inter)",
    ylim=(0, 1),
    title="inter-block share",
)
axes[2].legend()
plt.tight_layout()
plt.show()
top, bottom = share[len(parts) - 1], share[0]
print(f"inter-block share, first -> last position in a block: bottom layer {bottom[0]:.2f} -> {bottom[-1]:.2f}, "
      f"top layer {top[0]:.2f} -> {top[-1]:.2f}; averages {bottom.mean():.2f} vs {top.mean():.2f}")  # fmt: skip

# %% [markdown]
# ### The claim
#
# In both modes: the top layer's mean inter-block share exceeds the bottom layer's by at least
# 0.2 (decay decides how much of the past a layer keeps), and in every layer the share is higher at
# the first position of a block than at its last (the block's own keys take over as it fills).

# %%
assert top.mean() > bottom.mean() + 0.2
assert all(share[i][0] > share[i][-1] for i in share)

# %% [markdown]
# ## Result
#
# - Our twenty-line block algorithm equals the naive O(T²) decayed attention, the library's
#   `linear_attention` / `chunkwise_parts` (part by part) and `LightningAttention.contributions`.
# - Doubling T doubles lightning's operations and saved memory and quadruples softmax's
#   operations; the written-out softmax's memory is quadratic, SDPA's is linear — FlashAttention
#   fixed softmax's memory, lightning attention also fixes its work. Wall time should follow the
#   counts on a quiet machine; on a loaded one it jitters too much to assert on (see the printed
#   growth factors). For a careful timing, with a clean peak-memory measurement per case, run
#   `benchmarks/attention_long_context.py`.
# - Inside a model, the block's own keys and the carried state share the output according to the
#   position in the block and to each layer's decay: the bottom layer draws on its block and on the
#   state in comparable parts, the top layer (no decay) mostly on the state.
#
# ## Experiments to try
# - Change the block size C in `lightning` (16, 64, 256): the operations per token are ~C + d; at
#   which C is the time lowest on your machine, and why is it not C = 1?
# - Set every decay to 0 (λ = 1): the state of section 1 grows without bound over long texts;
#   print |KV| by block.
# - Time the recurrent form (`linear_attention(..., mode="recurrent")`) at T = 1024: same
#   operations, T sequential steps — how much slower is it than the block form?
# - Train the model of section 3 longer and with 4 layers: do the middle layers sit between the
#   bottom and top ones in the inter-block share?
