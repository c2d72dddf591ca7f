# %% [markdown]
# # A09 · The notebook index
#
# This page is the map of the curriculum, and it is generated from the notebooks themselves: every
# notebook is a jupytext file `notebooks/<track>/<ID>_<slug>.py`, and everything below — the list, the
# learning goals, the structure check — is read from those files the moment you run this. Add a
# notebook and it appears here (and in `bestiary notebooks list`, in the site and in the test suite)
# without being registered anywhere.
#
# ## What you'll learn
# - how the curriculum is organised: five tracks, from NumPy foundations (F) through transformers (T)
#   and architecture walkthroughs (A) to projects (P) and systems (S);
# - what each notebook teaches, in its own words (its *What you'll learn* list);
# - how to run one notebook (`bestiary notebooks run F01 --quick`) or build the whole site
#   (`bestiary notebooks build --quick --jobs 2`), and what quick mode means;
# - the lesson structure every notebook follows, and how it is checked automatically.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

import bestiary
from bestiary import notebooks

QUICK = bestiary.quick()  # nothing here is slow: quick and full mode do the same work
DEVICE = bestiary.device()  # unused: this notebook only reads files
bestiary.seed_everything(0)

# %% [markdown]
# ## Every notebook, read from disk
#
# `notebooks.discover()` globs the notebook folders and parses each file name (ID, slug, track) and
# its first heading (the title). `notebooks.outline(nb)` reads the source without running it: the
# `##` sections, the *What you'll learn* bullets, and how many figures, *What to look for* notes and
# `assert`s it has.

# %%
found = notebooks.discover()
outlines = [notebooks.outline(nb) for nb in found]
table = pd.DataFrame(
    {
        "ID": [o.info.id for o in outlines],
        "track": [o.info.track for o in outlines],
        "title": [o.info.title for o in outlines],
        "sections": [len(o.sections) for o in outlines],
        "figures": [o.figures for o in outlines],
        "asserts": [o.asserts for o in outlines],
        "file": [f"notebooks/{o.info.track}/{o.info.path.name}" for o in outlines],
    }
).set_index("ID")
print(f"{len(found)} notebooks in {table['track'].nunique()} tracks")
table

# %% [markdown]
# ## The index
#
# Each notebook with what it promises to teach. On the built site the titles link to the executed
# pages; from a checkout, run any of them with `bestiary notebooks run <ID> --quick` (about a minute
# on a laptop CPU) or open the `.py` file in Jupyter with jupytext, or in VS Code.

# %%
lines = []
for track in notebooks.TRACKS:
    in_track = [o for o in outlines if o.info.track == track]
    if not in_track:
        continue
    lines.append(f"### {notebooks.TRACK_TITLES[track]}\n")
    for o in in_track:
        link = f"../{track}/{o.info.stem}.html"  # the page `bestiary notebooks build` writes
        lines.append(f"**{o.info.id} · [{o.info.title}]({link})**\n")
        lines.extend(f"- {goal}" for goal in o.learn)
        lines.append("")
display(Markdown("\n".join(lines)))

# %% [markdown]
# ## The lesson structure, checked
#
# Every notebook follows the same shape, so that a learner always knows where to look: a title, then
# *What you'll learn*; a setup cell (`QUICK = bestiary.quick()`, device, seeds); sections in which
# each figure is preceded by a **What to look for** note; an `assert` on the learning outcome (with a
# stricter threshold in full mode than in quick mode); and *Experiments to try* at the end.
# `Outline.problems` names the conventions a notebook breaks; `tests/test_notebooks.py` runs the same
# check on every notebook, and runs every notebook in quick mode.
#
# **What to look for:** on the left, how many notebooks each track has today (the curriculum grows
# track by track). On the right, one row per notebook and one column per convention: every cell
# should be green. A red cell names the notebook and the rule to fix.

# %%
rules = list(outlines[0].checks)  # the conventions, as `Outline.checks` names them
passed = np.array([list(o.checks.values()) for o in outlines], dtype=float)  # (notebooks, rules)

fig, (ax_tracks, ax_rules) = plt.subplots(
    1, 2, figsize=(12, max(3.5, 0.32 * len(outlines) + 1.5)), gridspec_kw={"width_ratios": [1, 1.6]}
)
counts = [sum(o.info.track == t for o in outlines) for t in notebooks.TRACKS]
ax_tracks.barh(range(len(counts)), counts, color="tab:blue")
ax_tracks.set_yticks(range(len(counts)))
ax_tracks.set_yticklabels(notebooks.TRACKS)
ax_tracks.invert_yaxis()
ax_tracks.set_xlabel("notebooks")
ax_tracks.set_title("Notebooks per track")
for i, c in enumerate(counts):
    ax_tracks.text(c + 0.05, i, str(c), va="center")

ax_rules.imshow(passed, cmap="RdYlGn", vmin=0, vmax=1, aspect="auto")
ax_rules.set_xticks(range(len(rules)))
ax_rules.set_xticklabels(list(rules), rotation=30, ha="right")
ax_rules.set_yticks(range(len(outlines)))
ax_rules.set_yticklabels([f"{o.info.id} {o.info.title[:28]}" for o in outlines], fontsize=8)
ax_rules.set_xticks(np.arange(len(rules) + 1) - 0.5, minor=True)  # white lines between the cells
ax_rules.set_yticks(np.arange(len(outlines) + 1) - 0.5, minor=True)
ax_rules.grid(which="minor", color="white", linewidth=2)
ax_rules.tick_params(which="minor", length=0)
ax_rules.set_title("Lesson structure (green = present, red = missing)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Result
#
# The index must cover every notebook file on disk (including this one), and every notebook must
# follow the lesson structure. The check is the same in quick and full mode — it reads files, it does
# not train anything — so both thresholds are: **zero** notebooks missing, **zero** problems.

# %%
problems = {o.info.id: o.problems for o in outlines if o.problems}
on_disk = {p.stem for p in (notebooks.repo_root() / "notebooks").glob("*/[A-Z][0-9][0-9]_*.py")}
assert {o.info.stem for o in outlines} == on_disk, on_disk - {o.info.stem for o in outlines}
assert "A09" in table.index  # the index lists itself
assert not problems, problems
print(f"OK: {len(outlines)} notebooks indexed, all following the lesson structure.")

# %% [markdown]
# ## Experiments to try
# - Run `bestiary notebooks list` in a terminal, then `bestiary notebooks run A01 --quick`.
# - Copy a notebook to `notebooks/projects/P99_my_experiment.py`, change its title, and re-run this
#   index: it appears in the table and the chart, and the test suite now runs it too.
# - Delete the `assert` cell from your copy and look at the structure chart again.
# - Build the site (`bestiary notebooks build --quick`) and open `build/site/index.html`.
