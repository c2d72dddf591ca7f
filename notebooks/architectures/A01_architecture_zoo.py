# %% [markdown]
# # A01 · The architecture zoo
#
# Bestiary's catalog plans 267 neural network architectures in 26 families — MLPs and KANs, CNNs
# and ViTs, transformers, state-space models, graph networks, generative models — each to be written
# from scratch behind one function, `bestiary.build(name)`. Part of it exists today (the first cell
# below prints how much). This notebook is the guided tour: it asks the **live registry** what
# exists, builds every model, pushes an example batch through it and counts its parameters. Nothing here is a hand-kept list: when a new architecture is registered, it shows
# up in every table and chart below the next time you run the notebook. Nothing is trained.
#
# ## What you'll learn
# - how to explore the registry: `families()`, `list_models()`, `card(name)`, `build(name, tiny=True)`
#   and `example_input(name)`;
# - why every model has three sizes: a **tiny** config (for tests: forward + backward in well under
#   a second), a **default** config (a small useful model) and **presets** (the published sizes, such
#   as `resnet18` or `vit_b16`, whose parameter counts must equal the papers' exactly);
# - how to count the parameters of a billion-parameter model without allocating a single weight
#   (PyTorch's `meta` device);
# - how parameter counts spread over five orders of magnitude across families, and how much of the
#   catalog is already implemented.

# %%
import csv
import io
import time
import traceback
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

import bestiary
from bestiary.registry import tensors_in

QUICK = bestiary.quick()
DEVICE = bestiary.device()  # unused: building and one forward pass are cheap on the CPU
bestiary.seed_everything(0)
pd.set_option("display.max_rows", 1000, "display.max_colwidth", 60)

# %% [markdown]
# ## What is in the registry?
#
# Every architecture file registers itself with `@register(...)` when `bestiary.models` is imported,
# so the registry *is* the list of what exists. A **family** groups architectures by idea (recurrent,
# ssm, vision, graph, …). `card(name)` tells you what a model is, which paper it comes from, what
# input it takes and which options its `Config` has.

# %%
families = bestiary.families()
names = bestiary.list_models()
in_catalog = [n for n in names if bestiary.card(n).in_catalog]
print(
    f"{len(in_catalog)} of the catalog's 267 architectures exist today, in {len(families)} families; "
    f"{len(names) - len(in_catalog)} more are reference models outside the catalog "
    f"({', '.join(n for n in names if n not in in_catalog)})"
)
print(bestiary.card("mlp"))

# %% [markdown]
# ## Build, forward, count — every model
#
# For each model we build its **tiny** config, ask the model for an `example_input` of the right
# shape (a batch of 2), run a forward pass and record the output shapes. Inputs come in a few kinds
# — `vector (B, F)`, `sequence (B, T, D)`, `tokens (B, T)`, `image (B, C, H, W)`, graphs in the
# PyTorch Geometric convention — and `example_input` hides that difference, so the same loop works
# for all of them. A model whose natural output is several things (a VAE, a detector) returns a dict
# or a dataclass; we list every tensor in it.
#
# The **default** config is counted on PyTorch's `meta` device: tensors there have a shape and a
# dtype but no storage, so building even a huge model costs no memory and almost no time, and
# `numel()` still works. (In full mode we also build the default configs for real and run them, up to
# 400M parameters: some defaults are published billion-parameter sizes, which would need tens of GB
# of memory in float32; those are counted on `meta` only.)
#
# Each model is guarded with `try/except`: one broken model must not hide the others. Failures are
# collected in a table, and at the end we assert that there are none.


# %%
def forward(model: torch.nn.Module, inputs):
    """Call a model on whatever `example_input` returned: a tensor, a tuple of args or a dict of kwargs."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, tuple):
        return model(*inputs)
    return model(inputs)


def describe(output) -> str:
    """The shapes of the tensors in a model's output, e.g. "(2, 3)" or "logits (2, 10) · mu (2, 4)"."""
    if isinstance(output, torch.Tensor):
        return str(tuple(output.shape))
    if isinstance(output, dict) or hasattr(output, "__dataclass_fields__"):
        items = output.items() if isinstance(output, dict) else vars(output).items()
        parts = [f"{k} {tuple(v.shape)}" for k, v in items if isinstance(v, torch.Tensor)]
        return " · ".join(parts)
    return " · ".join(str(tuple(t.shape)) for t in tensors_in(output))


def count_on_meta(name: str, **overrides) -> int | None:
    """Parameter count without allocating weights (None if the constructor needs real numbers)."""
    try:
        with torch.device("meta"):
            return bestiary.count_params(bestiary.build(name, **overrides))
    except Exception:
        return None


MAX_REAL_PARAMS = 400_000_000  # 1.6 GB of float32 weights: larger defaults are counted on meta only
rows, failures = [], []
for name in tqdm(names, desc="models"):
    card = bestiary.card(name)
    row = {"name": name, "family": card.family, "input": card.input_kind, "year": card.year}
    try:
        torch.manual_seed(0)
        model = bestiary.build(name, tiny=True).eval()
        inputs = bestiary.example_input(name, batch=2, tiny=True)
        start = time.perf_counter()
        with torch.no_grad():
            out = forward(model, inputs)
        row["ms"] = 1000 * (time.perf_counter() - start)
        row["tiny params"] = bestiary.count_params(model)
        row["output (tiny, batch 2)"] = describe(out)
        assert all(torch.isfinite(t).all() for t in tensors_in(out) if t.is_floating_point()), (
            "non-finite output"
        )
        row["default params"] = count_on_meta(name)
        too_big = row["default params"] is not None and row["default params"] > MAX_REAL_PARAMS
        if (not QUICK and not too_big) or row["default params"] is None:  # build the default config for real
            model = bestiary.build(name).eval()
            with torch.no_grad():
                out = forward(model, bestiary.example_input(name, batch=2))
            row["default params"] = bestiary.count_params(model)
            row["output (default)"] = describe(out)
    except Exception as error:  # report, keep touring
        failures.append({"name": name, "family": card.family, "error": f"{type(error).__name__}: {error}"})
        traceback.print_exc(limit=2)
    rows.append(row)

zoo = pd.DataFrame(rows).set_index("name")
zoo.style.format({"ms": "{:.1f}", "tiny params": "{:,.0f}", "default params": "{:,.0f}"}, na_rep="—")

# %% [markdown]
# A few things to notice in the table: the same option names (`d_model`, `n_layers`, …) size every
# model, so tiny configs are small everywhere; the output column shows each model's contract
# (sequence models keep `(B, T, ·)`, classifiers return `(B, num_classes)`, generative models return
# several named tensors); and `ms` is the time of one tiny forward pass on the CPU.

# %%
failed = pd.DataFrame(failures, columns=["name", "family", "error"])
print(f"{len(zoo) - len(failed)} of {len(zoo)} models built and ran; {len(failed)} failed")
failed if len(failed) else None

# %% [markdown]
# ## Parameter counts per family
#
# Each dot is one architecture at its default config (a small, useful model: what you would train in
# a notebook); the hollow markers are the same models at their tiny config. The y-axis is
# logarithmic, because sizes differ by orders of magnitude.
#
# **What to look for:** tiny configs cluster in the hundreds to tens of thousands of parameters — that
# is what keeps the test suite fast. Default configs spread over several decades *within* a family:
# parameter count is set by width, depth and vocabulary, not by the idea of the architecture. Families
# whose models carry an embedding table or an image-sized input layer sit higher.

# %%
counted = zoo.dropna(subset=["default params"])
order = counted.groupby("family")["default params"].median().sort_values().index.tolist()
fig, ax = plt.subplots(figsize=(min(16, max(8, 0.55 * len(order) + 3)), 5))
rng = np.random.default_rng(0)
for i, family in enumerate(order):
    members = counted[counted["family"] == family]
    jitter = rng.uniform(-0.18, 0.18, len(members))
    ax.scatter(i + jitter, members["default params"], s=28, color="tab:blue", alpha=0.8, zorder=3)
    ax.scatter(i + jitter, members["tiny params"], s=22, facecolors="none", edgecolors="tab:orange", zorder=3)
ax.scatter([], [], color="tab:blue", label="default config")
ax.scatter([], [], facecolors="none", edgecolors="tab:orange", label="tiny config")
ax.set_yscale("log")
ax.set_xticks(range(len(order)))
ax.set_xticklabels([f"{f}\n({(counted['family'] == f).sum()})" for f in order], rotation=45, ha="right")
ax.set_ylabel("parameters (log scale)")
ax.set_title("Parameter counts of every registered architecture, by family (number of models)")
ax.grid(axis="y", which="major", alpha=0.3)
ax.legend(loc="upper left")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## How much of the catalog is implemented?
#
# `catalog.tsv` (shipped inside the package) is the plan: one line per architecture the bestiary is
# meant to hold, with its family. Comparing it with the registry shows the coverage — it grows as
# architectures are added.
#
# **What to look for:** the grey bar is the catalog's size for each family, the coloured bar what is
# registered today. A coloured bar longer than the grey one means extra registered names (variants not
# in the catalog), listed below the chart.

# %%
catalog_text = Path(bestiary.__file__).with_name("catalog.tsv").read_text(encoding="utf-8")
catalog = pd.DataFrame(
    [
        row[:3]
        for row in csv.reader(io.StringIO(catalog_text), delimiter="\t")
        if row and not row[0].startswith("#")
    ],
    columns=["family", "name", "description"],
)
extra = sorted(set(names) - set(catalog["name"]))  # registered variants the catalog does not list
coverage = (
    pd.DataFrame(
        {
            "catalog": catalog.groupby("family").size(),
            "registered": catalog[catalog["name"].isin(names)].groupby("family").size(),
            "extra registered": zoo.loc[extra].groupby("family").size(),
        }
    )
    .fillna(0)
    .astype(int)
    .sort_values(["catalog", "registered"])
)

fig, ax = plt.subplots(figsize=(9, max(4, 0.3 * len(coverage))))
y = np.arange(len(coverage))
ax.barh(y, coverage["catalog"], color="lightgrey", label="in the catalog")
ax.barh(y, coverage["registered"], color="tab:green", label="registered (catalog names)")
ax.barh(
    y,
    coverage["extra registered"],
    left=coverage["registered"],
    color="tab:olive",
    label="registered, not in the catalog",
)
ax.set_yticks(y)
ax.set_yticklabels(coverage.index)
ax.set_xlabel("architectures")
done, total = coverage["registered"].sum(), coverage["catalog"].sum()
ax.set_title(
    f"Catalog coverage: {done} of {total} catalog architectures registered ({100 * done / total:.0f} %)"
)
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

print("registered but not in the catalog:", ", ".join(extra) or "none")

# %% [markdown]
# ## Presets: published sizes, exactly
#
# A preset is a published architecture at its published size, addressable by name:
# `bestiary.build("resnet18")`. Its promise is strict — the parameter count equals the paper's or the
# reference implementation's *to the last parameter*, which is a strong check that the architecture
# is really the published one (a missing bias or a wrong expansion ratio changes the count).
# We count them on the meta device, so a 300-million-parameter ViT-L costs no memory — but building
# hundreds of deep modules still takes a moment each, so quick mode verifies one preset per model
# (its smallest) and lists the others with their published count only; full mode verifies all.

# %%
all_presets = bestiary.list_presets()
to_verify = set(all_presets)
if QUICK:  # one preset per model: the smallest published one
    to_verify = set()
    for name in names:
        own = bestiary.list_presets(name)
        if own:
            to_verify.add(min(own, key=lambda p: bestiary.card(p).presets[p].params or float("inf")))

preset_rows = []
for preset in tqdm(all_presets, desc="presets"):
    card = bestiary.card(preset)
    spec = card.presets[preset]
    ours = count_on_meta(preset) if preset in to_verify else None
    preset_rows.append(
        {
            "preset": preset,
            "model": card.name,
            "family": card.family,
            "published": spec.params,
            "ours": ours,
            "match": None if spec.params is None or ours is None else ours == spec.params,
            "source": spec.source,
        }
    )
columns = ["preset", "model", "family", "published", "ours", "match", "source"]
presets = pd.DataFrame(preset_rows, columns=columns).set_index("preset")
print(
    f"{len(presets)} presets of {presets['model'].nunique()} models; {presets['ours'].notna().sum()} counted"
)
presets.style.format({"published": "{:,.0f}", "ours": "{:,.0f}"}, na_rep="—") if len(presets) else presets

# %% [markdown]
# **What to look for:** each dot is one published model, placed at its published parameter count
# (log scale), grouped by family: from a few million parameters (mobile CNNs, ViT-Ti) to hundreds of
# millions or more (large ViTs, BERT, GPT-2, Llama-style LMs). Green means our build has exactly the
# published number of parameters; a red dot would be a preset that is not the published model; grey
# dots were not counted in this run (quick mode). The smallest and largest preset of each family are
# labelled.

# %%
if len(presets):
    known = presets.dropna(subset=["published"])
    order = known.groupby("family")["published"].median().sort_values().index.tolist()
    fig, ax = plt.subplots(figsize=(min(16, max(8, 0.6 * len(order) + 4)), 5.5))
    status_color = {True: "tab:green", False: "tab:red", None: "lightgrey"}
    rng = np.random.default_rng(0)
    for i, family in enumerate(order):
        members = known[known["family"] == family].sort_values("published")
        x = i + rng.uniform(-0.2, 0.2, len(members))
        colors = [status_color[m if m in (True, False) else None] for m in members["match"]]
        ax.scatter(x, members["published"], c=colors, s=30, edgecolors="black", linewidths=0.3, zorder=3)
        for j in {0, len(members) - 1}:  # label the extremes of the family
            ax.annotate(
                members.index[j],
                (x[j], members["published"].iloc[j]),
                fontsize=7,
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
            )
    for label, color in (
        ("equals the published count", "tab:green"),
        ("differs", "tab:red"),
        ("not counted in this run", "lightgrey"),
    ):
        ax.scatter([], [], c=color, edgecolors="black", linewidths=0.3, label=label)
    ax.set_yscale("log")
    ax.set_xticks(range(len(order)))
    ax.set_xticklabels([f"{f}\n({(known['family'] == f).sum()})" for f in order], rotation=30, ha="right")
    ax.set_ylabel("published parameters (log scale)")
    ax.set_title("Published presets by family (number of presets)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    fig.tight_layout()
    plt.show()
else:
    print("no presets registered yet")

# %% [markdown]
# ## The outcome
#
# The tour is a smoke test of the whole registry: every registered architecture must build at its
# tiny config, accept its own `example_input` and return finite numbers (in full mode, its default
# config must run too), and every preset we counted (one per model in quick mode, all in full mode)
# must match its published count exactly. The threshold is the same in quick and full mode — **zero
# failures** — because a model that cannot run a forward pass is a bug, not a matter of training budget.

# %%
assert failed.empty, f"{len(failed)} models failed:\n{failed.to_string()}"
mismatched = presets[presets["match"] == False]  # noqa: E712  (None = no published count)
assert mismatched.empty, f"presets whose count differs from the published one:\n{mismatched.to_string()}"
assert (zoo["tiny params"] <= zoo["default params"]).mean() > 0.9, "tiny configs should be smaller"
n_checked = int(presets["match"].notna().sum()) if len(presets) else 0
print(f"OK: {len(zoo)} architectures in {len(families)} families built and ran; {n_checked} presets checked.")

# %% [markdown]
# ## Experiments to try
# - Pick one family (`bestiary.list_models("ssm")`) and print each `card(name)`: which papers, which
#   years? Sort the zoo table by `year` to see the field's timeline.
# - Build a model with your own options, e.g. `bestiary.build("vit", d_model=64, n_layers=4)`, and
#   predict its parameter count by hand before checking with `bestiary.count_params`.
# - Try a wrong option (`bestiary.build("mlp", width=3)`) or a wrong input shape, and read the errors.
# - `bestiary info resnet50` on the command line prints the per-module parameter table: which part of
#   a ResNet holds most of the weights? Compare with `bestiary info vit_b16`.
# - Time the tiny forward passes with batch 64 instead of 2: which families scale worst?
