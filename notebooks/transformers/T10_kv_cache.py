# %% [markdown]
# # T10 · The KV cache
#
# Generating text one token at a time with a transformer repeats almost all of its work: at step t
# the model recomputes keys and values for the t tokens it already processed at step t-1. Causal
# attention guarantees those never change (a position never sees the future), so we can **cache**
# them. This is the single most important optimisation of LLM inference.
#
# ## What you'll learn
# - What exactly is cached (per layer: keys and values, after RoPE) and what is recomputed.
# - Time per token with and without the cache, measured: O(t) vs O(1) work per step (in tokens).
# - How much memory the cache takes, and why grouped-query attention (GQA) shrinks it.
# - Serving strategies: **paged** allocation (vLLM), **sliding-window** caches (Mistral) and
#   **quantized** caches, each explained and sketched.

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import bestiary
from bestiary.generation import generate, stream

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
N_NEW = 128 if QUICK else 512

model = bestiary.build(
    "decoder_only",
    vocab_size=256,
    d_model=256,
    n_layers=4,
    n_heads=8,
    n_kv_heads=2,
    d_ff=704,
    max_seq_len=1024,
).to(DEVICE)
model.eval()
cfg = model.config
head_dim = cfg.d_model // cfg.n_heads
prompt = torch.randint(0, 256, (1, 128), device=DEVICE)  # a 128-token prompt
print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters; {cfg.n_layers} layers, "
      f"{cfg.n_heads} query heads sharing {cfg.n_kv_heads} key/value heads of size {head_dim}")  # fmt: skip

# %% [markdown]
# ## 1. What is computed at each step
#
# At step t, attention needs the query of the **new** token and the keys/values of **all** tokens.
# Without a cache, the model recomputes the whole t × t causal attention (and every MLP) for the
# whole prefix; with a cache it computes one new row and appends one key and one value per layer:
#
# ```python
# cache = model.init_cache(batch)                # one KVCache per layer
# logits = model(prompt, cache=cache)            # prefill: fills positions 0..T-1
# logits = model(next_token[:, None], cache=cache)  # decode: one position, reads the rest
# ```
#
# **What to look for:** left, the attention scores an uncached step computes (the whole triangle,
# again); right, what a cached step computes (one row, dark) while reusing the stored keys (light).

# %%
t = 12
full = np.tril(np.ones((t, t)))
cached_view = np.zeros((t, t))
cached_view[-1] = 1.0
cached_view[:-1] = 0.25 * np.tril(np.ones((t - 1, t)))[:, :t]
fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
axes[0].imshow(full, cmap="Blues", vmin=0, vmax=1)
axes[0].set_title(f"no cache: step {t} recomputes {int(full.sum())} scores")
axes[1].imshow(cached_view, cmap="Blues", vmin=0, vmax=1)
axes[1].set_title(f"KV cache: step {t} computes {t} scores")
for ax in axes:
    ax.set_xlabel("key position (cached K, V)")
    ax.set_ylabel("query position")
plt.tight_layout()
plt.show()

# %% [markdown]
# Let us look inside a real cache after a prefill: one tensor of keys and one of values per layer,
# shape (batch, kv_heads, positions, head_dim).
#
# **What to look for:** each row of the heatmap is one position's key vector for one head of layer
# 0. Rows are written once and never change; decoding only appends rows at the bottom.

# %%
cache = model.init_cache(prompt.shape[0])
with torch.no_grad():
    model(prompt, cache=cache)
    model(torch.tensor([[7]], device=DEVICE), cache=cache)
print(
    "layers:",
    len(cache.layers),
    "| keys of layer 0:",
    tuple(cache[0].keys.shape),
    "| cached positions:",
    len(cache),
)
fig, ax = plt.subplots(figsize=(9, 3.6))
last = cache[0].keys[0, 0, -20:].float().cpu().numpy()  # the last 20 cached positions (20, head_dim)
ax.imshow(
    last,
    aspect="auto",
    cmap="RdBu_r",
    interpolation="nearest",
    extent=(-0.5, head_dim - 0.5, len(cache) - 0.5, len(cache) - 20.5),
)
ax.axhline(len(cache) - 1.5, color="k", lw=2)
ax.text(
    head_dim - 1,
    len(cache) - 1.6,
    "appended by the decode step",
    ha="right",
    va="bottom",
    fontsize=9,
    backgroundcolor="w",
)
ax.set_xlabel("key dimension (after RoPE)")
ax.set_ylabel("position")
ax.set_title("Layer 0, KV head 0: the last 20 of 129 cached key vectors (128 prompt + 1 decoded)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Time per token
#
# We generate greedily with and without the cache and time every step (the generator `stream`
# yields each token as soon as it exists). Both must produce **identical** tokens — the cache is an
# optimisation, not an approximation.
#
# **What to look for:** without the cache, every step re-processes the whole prefix (128 to 256+
# tokens here), so each token costs several times more and the cost keeps growing with the position;
# with the cache it stays nearly flat. (On a busy machine the curves are noisy.)


# %%
def timed_stream(use_cache: bool) -> tuple[list[int], list[float]]:
    tokens, times = [], []
    last = time.perf_counter()
    for token in stream(model, prompt, N_NEW, temperature=0, use_cache=use_cache):
        now = time.perf_counter()
        tokens.append(token)
        times.append(now - last)
        last = now
    return tokens, times


timed_stream(True)  # warm-up
tok_cached, t_cached = timed_stream(True)
tok_plain, t_plain = timed_stream(False)
speedup = sum(t_plain) / sum(t_cached)
print(f"{N_NEW} tokens: no cache {sum(t_plain):.2f} s, cache {sum(t_cached):.2f} s -> {speedup:.1f}x faster")
print("identical tokens:", tok_cached == tok_plain)


def smooth(x, k=8):
    return np.convolve(x, np.ones(k) / k, mode="valid")


fig, ax = plt.subplots(figsize=(8, 4))
ax.plot(1e3 * smooth(np.array(t_plain)), label="no cache")
ax.plot(1e3 * smooth(np.array(t_cached)), label="KV cache")
ax.set_xlabel("generated token index")
ax.set_ylabel("ms per token (moving average)")
ax.set_title("Time per generated token")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 3. Memory
#
# The cache holds, for every layer and every position, one key and one value vector per KV head:
#
# $$\text{bytes} = 2 \times n_\text{layers} \times n_\text{kv heads} \times d_\text{head} \times T \times B \times \text{bytes per number}$$
#
# For SmolLM2-135M (30 layers, 3 KV heads of 64, fp32) that is 46 KB per token: 8,192 tokens take
# 377 MB — about 70% of the weights' own 538 MB. Grouped-query attention is exactly a cache-size
# trick: 9 query heads share 3 KV heads, a 3x smaller cache than full multi-head attention.
#
# **What to look for:** the measured size of our cache equals the formula; the lines show how
# MHA / GQA / MQA scale for the SmolLM2 shape.


# %%
def cache_bytes(n_layers, n_kv_heads, head_dim, length, batch=1, bytes_per=4):
    return 2 * n_layers * n_kv_heads * head_dim * length * batch * bytes_per


measured = cache.nbytes()
formula = cache_bytes(cfg.n_layers, cfg.n_kv_heads, head_dim, len(cache))
print(f"our cache after {len(cache)} positions: {measured:,} bytes; formula: {formula:,}")
lengths = np.array([256, 1024, 2048, 4096, 8192])
fig, ax = plt.subplots(figsize=(7.5, 4))
for name, kv in [("MHA (9 KV heads)", 9), ("GQA (3 KV heads, SmolLM2)", 3), ("MQA (1 KV head)", 1)]:
    ax.plot(lengths, cache_bytes(30, kv, 64, lengths) / 2**20, "o-", label=name)
ax.axhline(134.5e6 * 4 / 2**20, color="gray", ls="--", label="SmolLM2 weights (fp32)")
ax.set_xlabel("context length (tokens)")
ax.set_ylabel("KV cache (MiB), batch 1, fp32")
ax.set_title("KV cache size for the SmolLM2-135M shape")
ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Cache strategies for serving
#
# ### Paged attention (vLLM, Kwon et al. 2023, arXiv:2309.06180)
# A server does not know how long each answer will be. Reserving `max_len` contiguous slots per
# request wastes most of them. vLLM splits the cache into fixed **blocks** (e.g. 16 tokens) and
# keeps a per-request *block table*, like virtual memory pages: a request holds only
# ⌈length / 16⌉ blocks, and requests with a shared prefix can share blocks.
#
# Below, a simulation of 64 requests with random lengths: how much reserved memory actually holds
# tokens. **What to look for:** contiguous reservation wastes most memory; paging wastes at most
# one partly filled block per request.

# %%
rng = np.random.default_rng(0)
max_len, block = 2048, 16
lengths_req = rng.integers(20, 900, size=64)
contiguous = lengths_req.sum() / (max_len * len(lengths_req))
paged = lengths_req.sum() / (np.ceil(lengths_req / block) * block).sum()
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.bar(
    ["contiguous (max_len)", f"paged ({block}-token blocks)"],
    [100 * contiguous, 100 * paged],
    color=["C3", "C2"],
)
ax.set_ylabel("% of reserved cache holding tokens")
ax.set_ylim(0, 100)
ax.set_title("Memory utilisation for 64 requests")
plt.tight_layout()
plt.show()

# %% [markdown]
# ### Sliding-window cache (Mistral 7B, arXiv:2310.06825)
# If every layer attends only to the last W positions, keys older than W are never read again: the
# cache becomes a ring buffer of W slots and its size stops growing (information still flows
# further back through the layers, W per layer). Our `decoder_only` supports the attention side
# with `sliding_window=W`; evicting old entries from the cache is the serving side.
#
# ### Quantized cache
# Keys and values can be stored in int8 (or 4 bits) with one scale per position and head, cutting
# memory 4x (8x) versus fp32. We try it: quantize the cache after the prefill and compare the next
# logits with the exact ones.


# %%
def quantize_int8(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per (batch, head, position) vector: x ≈ q * scale."""
    scale = x.abs().amax(dim=-1, keepdim=True).clamp_min(1e-8) / 127  # (B, H, T, 1)
    return torch.round(x / scale).to(torch.int8), scale


long_prompt = torch.randint(0, 256, (1, 200), device=DEVICE)
exact_cache, q_cache = model.init_cache(1), model.init_cache(1)
next_tok = torch.tensor([[3]], device=DEVICE)
with torch.no_grad():
    model(long_prompt, cache=exact_cache)
    model(long_prompt, cache=q_cache)
    int8_bytes = 0
    for layer in q_cache:  # replace each layer's stored K/V by their int8 round trip
        (qk, sk), (qv, sv) = quantize_int8(layer.keys), quantize_int8(layer.values)
        int8_bytes += qk.numel() + qv.numel() + (sk.numel() + sv.numel()) * 4
        layer.keys, layer.values = qk.float() * sk, qv.float() * sv
    exact = model(next_tok, cache=exact_cache)[0, -1]
    approx = model(next_tok, cache=q_cache)[0, -1]
rel_err = float((approx - exact).norm() / exact.norm())
print(f"fp32 cache {exact_cache.nbytes() / 1e6:.2f} MB -> int8 {int8_bytes / 1e6:.2f} MB; "
      f"relative logit error {rel_err:.2e}; same argmax: {bool(approx.argmax() == exact.argmax())}")  # fmt: skip

# %% [markdown]
# ## Result
#
# The cache gives identical tokens, is faster by at least 2x over 128 new tokens (quick mode; a
# tiny model on a busy CPU is dominated by per-step overhead) / 5x over 512 tokens (full mode) — the gap grows with length since uncached cost per token grows linearly —
# its size matches the formula, and an int8 cache changes the logits by well under 1%.

# %%
assert tok_cached == tok_plain
assert measured == formula
assert speedup >= (2.0 if QUICK else 5.0), speedup
assert rel_err < 0.01, rel_err
out = generate(model, prompt, 4, temperature=0)
assert out.shape == (1, 132)
print(f"speed-up {speedup:.1f}x")

# %% [markdown]
# ## Experiments to try
# - Batch 8 prompts (`prompt` of shape (8, 128)): how do time per token and cache size scale?
# - Rebuild the model with `n_kv_heads=8` (plain multi-head attention): measure the cache size and
#   the decode speed. Then `n_kv_heads=1` (MQA).
# - Quantize to 4 bits (`/ 7` instead of `/ 127`, clamp to [-8, 7]): how large is the logit error?
# - Implement eviction for a sliding-window model: after each step, `layer.keys = layer.keys[..., -W:, :]` for each `layer` of the cache (and the values).
#   What breaks in the position bookkeeping, and how would you fix it?
