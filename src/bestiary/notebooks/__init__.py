"""The notebook pipeline: find the curriculum's notebooks, execute them, render them as a site.

The source of truth for every notebook is a jupytext *percent* file,
`notebooks/<track>/<ID>_<slug>.py` (`# %%` code cells, `# %% [markdown]` prose). One module per job:

- `discovery`: **discovers** them by glob (`discover`, `find`, `NotebookInfo`, `repo_root`) — a new
  file is picked up by `bestiary notebooks list`, by the build and by `tests/test_notebooks.py`
  without being registered anywhere;
- `structure`: reads a notebook's **lesson structure** from its source, without running it
  (`outline`, `Outline.problems`);
- `execution`: **executes** one in a fresh Jupyter kernel (`run_notebook`), reporting a failure as
  the failing cell's index, source, line in the `.py` file and the traceback (`CellFailure`);
- `site`: **builds** the site (`build`): executed `.ipynb` under `build/notebooks/<track>/`, HTML
  with the figures embedded under `build/site/<track>/`, and `build/site/index.html`, grouped by track.

Everything public is importable from here: `from bestiary.notebooks import discover, run_notebook`.
"""

from __future__ import annotations

from bestiary.notebooks.discovery import (
    TRACK_TITLES,
    TRACKS,
    NotebookError,
    NotebookInfo,
    discover,
    find,
    notebook_info,
    read_title,
    repo_root,
)
from bestiary.notebooks.execution import (
    DEFAULT_TIMEOUT,
    INLINE_BACKEND,
    CellFailure,
    RunResult,
    kernel_env,
    read_notebook,
    run_notebook,
)
from bestiary.notebooks.site import (
    KATEX_FILES,
    KATEX_HEAD,
    BuildResult,
    build,
    build_one,
    copy_katex,
    render_html,
    render_index,
    write_index,
)
from bestiary.notebooks.structure import Outline, outline

__all__ = [
    "DEFAULT_TIMEOUT",
    "INLINE_BACKEND",
    "KATEX_FILES",
    "KATEX_HEAD",
    "TRACKS",
    "TRACK_TITLES",
    "BuildResult",
    "CellFailure",
    "NotebookError",
    "NotebookInfo",
    "Outline",
    "RunResult",
    "build",
    "build_one",
    "copy_katex",
    "discover",
    "find",
    "kernel_env",
    "notebook_info",
    "outline",
    "read_notebook",
    "read_title",
    "render_html",
    "render_index",
    "repo_root",
    "run_notebook",
    "write_index",
]
