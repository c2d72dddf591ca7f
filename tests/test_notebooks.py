"""Every notebook of the curriculum runs in quick mode; the runner reports failures usefully.

The notebook tests are parametrized over `bestiary.notebooks.discover()`: a new file under
`notebooks/<track>/` is tested without being listed anywhere. Run them in parallel with
`pytest -n 2 tests/test_notebooks.py` (conftest.py gives each worker one torch thread, and the
runner passes OMP_NUM_THREADS on to the kernel).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import nbformat
import pytest

from bestiary import notebooks
from bestiary.notebooks import NotebookError, discover, find, notebook_info, outline, run_notebook

NOTEBOOKS = discover()


@pytest.mark.slow
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(nb: notebooks.NotebookInfo) -> None:
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    result = run_notebook(nb, quick=True, threads=threads)
    assert result.ok, f"notebook {nb.id} ({nb.path}) failed in quick mode:\n{result.failure}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_follows_the_lesson_structure(nb: notebooks.NotebookInfo) -> None:
    # DESIGN.md: title -> What you'll learn -> setup -> sections with "What to look for" before
    # figures -> an assert on the outcome -> Experiments to try. Read from the source, no kernel.
    problems = outline(nb).problems
    assert not problems, f"{nb.path}: " + "; ".join(problems)


# ---------------------------------------------------------------------------------------------
# the runner itself, on tiny notebooks written to tmp_path

PASSING = """# %% [markdown]
# # F98 · A passing notebook
#
# Some prose.

# %%
import os
import sys

import matplotlib.pyplot as plt

import bestiary

print("EXE", sys.executable)
print("CWD", os.getcwd())
print("ENV", os.environ["BESTIARY_QUICK"], os.environ["MPLBACKEND"], os.environ["HF_HUB_OFFLINE"])
assert bestiary.quick()

# %% [markdown]
# **What to look for:** a straight line.

# %%
plt.plot([0, 1, 2], [0, 1, 2])
plt.show()
"""

FAILING = """# %% [markdown]
# # F99 · A failing notebook

# %%
x = 1


# %%
def divide(a, b):
    return a / b


print("before the failure")
y = divide(x, 0)

# %%
print("never reached")
"""


def _tree(tmp_path: Path) -> Path:
    """A miniature checkout: pyproject.toml + notebooks/foundations/ with the two notebooks."""
    (tmp_path / "pyproject.toml").write_text("")
    folder = tmp_path / "notebooks" / "foundations"
    folder.mkdir(parents=True)
    (folder / "F98_passing.py").write_text(PASSING)
    (folder / "F99_failing.py").write_text(FAILING)
    (folder / "helper.py").write_text("")  # not a notebook name: ignored
    (tmp_path / "notebooks" / "drafts").mkdir()
    (tmp_path / "notebooks" / "drafts" / "F50_draft.py").write_text("")  # not a track: ignored
    return tmp_path


def test_discover_parses_id_slug_track_and_title(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    found = discover(root)
    assert [(nb.id, nb.slug, nb.track) for nb in found] == [
        ("F98", "passing", "foundations"),
        ("F99", "failing", "foundations"),
    ]
    assert found[0].title == "A passing notebook"  # first heading, "F98 ·" prefix removed
    assert [nb.id for nb in find(["f99", "F98_passing"], root)] == ["F99", "F98"]
    with pytest.raises(NotebookError, match=r"Did you mean: F98\b"):
        find(["F98_pasing"], root)
    with pytest.raises(NotebookError, match="<ID>_<slug>"):
        notebook_info(root / "notebooks" / "foundations" / "helper.py")


LESSON = """# %% [markdown]
# # F97 · A lesson
#
# ## What you'll learn
# - one thing;
# - another thing that
#   continues on a second line.

# %%
import bestiary

QUICK = bestiary.quick()

# %% [markdown]
# ## A section
#
# **What to look for:** a line.

# %%
plt.plot([1, 2])
plt.show()
assert True

# %% [markdown]
# ## Experiments to try
# - more.
"""


def test_outline_reads_the_lesson_structure(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    path = root / "notebooks" / "foundations" / "F97_lesson.py"
    path.write_text(LESSON)
    good = outline(notebook_info(path))
    assert good.learn == ["one thing;", "another thing that continues on a second line."]
    assert good.sections == ["What you'll learn", "A section", "Experiments to try"]
    assert (good.look_for, good.figures, good.asserts, good.setup) == (1, 1, 1, True)
    assert good.problems == []
    # each broken convention is named
    broken = (
        LESSON.replace("**What to look for:**", "Look:")
        .replace("assert True", "")
        .replace("Experiments", "More")
    )
    path.write_text(broken.replace("QUICK = bestiary.quick()", "QUICK = False"))
    problems = "; ".join(outline(notebook_info(path)).problems)
    for expected in ("What to look for", "asserts no", "Experiments to try", "QUICK = bestiary.quick()"):
        assert expected in problems, problems


def test_index_learning_goals_render_inline_markdown_safely() -> None:
    from bestiary.notebooks.site import _inline_markdown as render

    assert render("the *decision boundary*") == "the <em>decision boundary</em>"
    assert render("**tiny** config") == "<strong>tiny</strong> config"
    assert render("`a*b*c` stays code") == "<code>a*b*c</code> stays code"  # no emphasis inside code
    assert render("2 * 3 * 4 <script>") == "2 * 3 * 4 &lt;script&gt;"  # arithmetic and HTML are escaped text


def test_the_repository_notebooks_are_discovered() -> None:
    on_disk = {p.stem for p in Path(notebooks.repo_root(), "notebooks").glob("*/[A-Z][0-9][0-9]_*.py")}
    assert {nb.stem for nb in NOTEBOOKS} == on_disk
    assert all(nb.title for nb in NOTEBOOKS), "every notebook needs a '# # Title' markdown heading"


def test_a_failing_cell_is_reported_with_index_source_line_and_traceback(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    path = root / "notebooks" / "foundations" / "F99_failing.py"
    result = run_notebook(path, quick=True, threads=1)
    assert not result.ok
    failure = result.failure
    assert failure.cell_index == 2  # markdown title, `x = 1`, then the failing cell
    assert "y = divide(x, 0)" in failure.cell_source
    assert failure.ename == "ZeroDivisionError"
    assert "return a / b" in failure.traceback and "\x1b[" not in failure.traceback  # colours stripped
    assert FAILING.splitlines()[failure.line - 1] == "def divide(a, b):"  # where the cell starts in the .py
    report = str(failure)
    assert str(path) in report and "cell 2" in report and "ZeroDivisionError" in report
    # execution stopped at the failure: the last cell never ran
    assert result.notebook.cells[3].get("outputs", []) == []


def test_a_cell_over_the_time_limit_is_reported_as_a_timeout(tmp_path: Path) -> None:
    path = _tree(tmp_path) / "notebooks" / "foundations" / "F96_slow.py"
    path.write_text(
        "# %% [markdown]\n# # F96 · Slow\n\n# %%\nimport time\n\ntime.sleep(60)\n\n# %%\nprint('after')\n"
    )
    start = time.perf_counter()
    result = run_notebook(path, quick=True, threads=1, timeout=2)
    assert time.perf_counter() - start < 30  # interrupted, not waited out
    assert not result.ok
    assert result.failure.ename == "CellTimeoutError" and "2 s" in result.failure.evalue
    assert result.failure.cell_index == 1 and "time.sleep(60)" in result.failure.cell_source


def test_build_writes_ipynb_html_with_embedded_png_and_an_index_marking_failures(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    out = tmp_path / "build"
    results = notebooks.build(quick=True, jobs=2, out_dir=out, root=root, progress=False)
    by_id = {r.id: r for r in results}
    assert by_id["F98"].ok, by_id["F98"].failure
    assert not by_id["F99"].ok and "ZeroDivisionError" in by_id["F99"].failure

    # the executed notebook: the kernel was this interpreter, in quick mode, at the repository root
    nb = nbformat.read(out / "notebooks" / "foundations" / "F98_passing.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"EXE {sys.executable}" in printed
    assert f"CWD {root.resolve()}" in printed
    assert "ENV 1 module://matplotlib_inline.backend_inline 1" in printed
    assert any("image/png" in o.get("data", {}) for o in nb.cells[3].outputs)

    page = (out / "site" / "foundations" / "F98_passing.html").read_text()
    assert "data:image/png;base64," in page
    assert 'href="../index.html"' in page  # the way back to the index
    # the failed notebook still gets a page, showing the error
    assert "ZeroDivisionError" in (out / "site" / "foundations" / "F99_failing.html").read_text()

    index = (out / "site" / "index.html").read_text()
    assert "foundations/F98_passing.html" in index and "foundations/F99_failing.html" in index
    assert "<tr class='failed'><td class='id'>F99</td>" in index
    assert "<tr class='ok'><td class='id'>F98</td>" in index
    assert "F99_failing.py:" in index and "cell 2 raised ZeroDivisionError" in index  # where it failed
    assert json.loads((out / "site" / "results.json").read_text())["F99"]["ok"] is False


def test_katex_is_copied_for_offline_math(tmp_path: Path) -> None:
    # package.json pins katex; `make` installs it. Without it the pages would need a CDN for math.
    assert notebooks.copy_katex(tmp_path)
    for name in notebooks.KATEX_FILES:
        assert (tmp_path / "katex" / name).stat().st_size > 1000
    css = (tmp_path / "katex" / "katex.min.css").read_text()
    fonts = {p.name for p in (tmp_path / "katex" / "fonts").glob("*.woff2")}
    assert fonts and all(f"fonts/{font}" in css for font in fonts)  # the stylesheet finds every font
    assert 'href="../katex/katex.min.css"' in notebooks.KATEX_HEAD
