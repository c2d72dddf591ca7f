"""The notebook pipeline: find the curriculum's notebooks, execute them, render them as a site.

The source of truth for every notebook is a jupytext *percent* file,
`notebooks/<track>/<ID>_<slug>.py` (`# %%` code cells, `# %% [markdown]` prose). This module

1. **discovers** them by glob — a new file is picked up by `bestiary notebooks list`, by the build
   and by `tests/test_notebooks.py` without being registered anywhere;
2. **executes** one in a fresh Jupyter kernel (jupytext -> nbformat -> nbclient), reporting a failure
   as the failing cell's index, source, line in the `.py` file and the traceback;
3. **builds** the site: executed `.ipynb` under `build/notebooks/<track>/`, HTML with the figures
   embedded under `build/site/<track>/`, and `build/site/index.html`, grouped by track.

The kernel's environment (see `kernel_env`):

- the kernel is always *this* interpreter (`sys.executable -m ipykernel_launcher`), whatever kernel
  specs happen to be installed — a stray global `python3` spec cannot run the notebooks against
  another Python without `bestiary`;
- `BESTIARY_QUICK=1` in quick mode (what `bestiary.quick()` reads), `MPLBACKEND` set to the inline
  backend (a caller's `MPLBACKEND=Agg` would otherwise swallow every figure), `OMP_NUM_THREADS`
  (1 per notebook when several run in parallel: two torch processes with two threads each on a
  2-core machine are slower than one after the other), `HF_HUB_OFFLINE=1` (nothing is downloaded);
- the working directory is the repository root (the folder holding `notebooks/`), the same
  directory the headless check `python notebooks/<track>/<file>.py` runs from, so relative paths
  in a notebook mean the same thing in both.
"""

from __future__ import annotations

import difflib
import html
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: the curriculum's tracks, in the order the index shows them
TRACKS = ("foundations", "transformers", "architectures", "projects", "systems")
TRACK_TITLES = {
    "foundations": "F · Foundations (NumPy from scratch)",
    "transformers": "T · Transformers and language models",
    "architectures": "A · Architecture walkthroughs",
    "projects": "P · Projects",
    "systems": "S · Systems",
}
_TRACK_LETTER = {track: track[0].upper() for track in TRACKS}
_STEM = re.compile(r"^(?P<id>[A-Z]\d{2})_(?P<slug>[a-z0-9_]+)$")
_HEADING = re.compile(r"^#\s+#{1,6}\s+(?P<title>.+?)\s*$")  # a markdown heading inside "# " comments
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: per-cell time limit in seconds (a quick-mode notebook should take about a minute in total)
DEFAULT_TIMEOUT = 1200
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


class NotebookError(KeyError):
    """An unknown notebook ID (or a malformed notebook file name)."""

    def __str__(self) -> str:
        return str(self.args[0])


# --------------------------------------------------------------------------------------------------
# discovery


@dataclass(frozen=True)
class NotebookInfo:
    """One notebook source file and what its name and first heading say about it."""

    id: str  # "F01"
    slug: str  # "numpy_neural_net"
    track: str  # "foundations"
    title: str  # the first markdown heading, without the "F01 ·" prefix
    path: Path

    @property
    def stem(self) -> str:
        return f"{self.id}_{self.slug}"


def repo_root(start: Path | None = None) -> Path:
    """The folder that holds `notebooks/`: $BESTIARY_ROOT, else the nearest parent of `start`
    (default: the working directory), else the source checkout this module lives in."""
    if os.environ.get("BESTIARY_ROOT"):
        return Path(os.environ["BESTIARY_ROOT"]).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "notebooks").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    checkout = Path(__file__).resolve().parents[2]  # src/bestiary/notebooks.py -> the checkout
    if (checkout / "notebooks").is_dir():
        return checkout
    raise NotebookError(
        f"no notebooks/ folder found above {here}; run from the Bestiary checkout or set BESTIARY_ROOT"
    )


def read_title(path: Path) -> str:
    """The first markdown heading of a percent-format notebook ("" if there is none)."""
    in_markdown = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line or "[md]" in line
            continue
        match = _HEADING.match(line) if in_markdown else None
        if match:
            return match["title"]
    return ""


def notebook_info(path: Path) -> NotebookInfo:
    """Parse `<track>/<ID>_<slug>.py` and read the notebook's title."""
    path = Path(path).resolve()
    match = _STEM.match(path.stem)
    if not match:
        raise NotebookError(
            f"{path.name}: notebook files are named <ID>_<slug>.py, e.g. F01_numpy_neural_net.py"
        )
    nb_id, slug = match["id"], match["slug"]
    title = read_title(path)
    # "F01 · A two-layer net" -> "A two-layer net": the ID has its own column everywhere we show it
    title = re.sub(rf"^{nb_id}\s*[·:\-—–|]\s*", "", title) or slug.replace("_", " ")
    return NotebookInfo(id=nb_id, slug=slug, track=path.parent.name, title=title, path=path)


def discover(root: Path | None = None) -> list[NotebookInfo]:
    """Every `notebooks/<track>/<ID>_<slug>.py` under `root`, in track order, then by ID."""
    folder = (root or repo_root()) / "notebooks"
    found = []
    for path in folder.glob("*/*.py"):
        if path.parent.name in TRACKS and _STEM.match(path.stem):
            found.append(notebook_info(path))
    order = {track: i for i, track in enumerate(TRACKS)}
    return sorted(found, key=lambda nb: (order[nb.track], nb.id))


def find(ids: Iterable[str], root: Path | None = None) -> list[NotebookInfo]:
    """The notebooks named by ID ("F01", case-insensitive) or stem ("F01_numpy_neural_net")."""
    notebooks = discover(root)
    by_key = {nb.id.lower(): nb for nb in notebooks} | {nb.stem.lower(): nb for nb in notebooks}
    chosen = []
    for raw in ids:
        key = Path(raw).stem.lower()
        if key not in by_key:
            close = difflib.get_close_matches(key, list(by_key), n=3, cutoff=0.5)
            hint = f" Did you mean: {', '.join(by_key[c].id for c in close)}?" if close else ""
            raise NotebookError(f"unknown notebook {raw!r}.{hint} (`bestiary notebooks list` lists all)")
        if by_key[key] not in chosen:
            chosen.append(by_key[key])
    return chosen


# --------------------------------------------------------------------------------------------------
# the lesson structure (DESIGN.md, "Notebooks")


@dataclass
class Outline:
    """What a notebook teaches and whether it follows the lesson structure, read from its source."""

    info: NotebookInfo
    sections: list[str]  # the "## " headings, in order
    learn: list[str]  # the bullets under "## What you'll learn"
    look_for: int  # markdown cells with "**What to look for:**"
    figures: int  # code cells that show a figure (plt.show(), or a widget/animation display)
    asserts: int  # assert statements in code cells
    setup: bool  # the setup cell reads QUICK = bestiary.quick()

    @property
    def checks(self) -> dict[str, bool]:
        """Each convention of the lesson structure -> whether this notebook follows it."""
        return {
            "What you'll learn": bool(self.learn),
            "setup cell": self.setup,
            "figure": self.figures > 0,
            "What to look for": self.look_for > 0 or self.figures == 0,
            "assert": self.asserts > 0,
            "Experiments to try": bool(self.sections) and self.sections[-1] == "Experiments to try",
        }

    @property
    def problems(self) -> list[str]:
        """The conventions this notebook breaks, in words (empty when it follows them all)."""
        messages = {
            "What you'll learn": "no '## What you'll learn' section with bullets",
            "setup cell": "no setup cell with `QUICK = bestiary.quick()`",
            "figure": "shows no figure (plt.show())",
            "What to look for": "no '**What to look for:**' before its figures",
            "assert": "asserts no learning outcome",
            "Experiments to try": "does not end with '## Experiments to try'",
        }
        return [messages[rule] for rule, ok in self.checks.items() if not ok]


def _cells(text: str) -> list[tuple[str, str]]:
    """Split a percent-format file into (kind, text) cells; markdown loses its '# ' prefixes."""
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            kind = "markdown" if ("[markdown]" in line or "[md]" in line) else "code"
            cells.append((kind, []))
        elif cells:
            kind, lines = cells[-1]
            lines.append(re.sub(r"^# ?", "", line) if kind == "markdown" else line)
    return [(kind, "\n".join(lines)) for kind, lines in cells]


def outline(notebook: NotebookInfo) -> Outline:
    """Read a notebook's sections, learning goals and structure without running it."""
    cells = _cells(notebook.path.read_text(encoding="utf-8"))
    markdown = "\n".join(text for kind, text in cells if kind == "markdown")
    code = [text for kind, text in cells if kind == "code"]
    learn_block = re.search(r"^## What you.ll learn\s*\n(?P<body>.*?)(?=^#|\Z)", markdown, re.M | re.S)
    learn = []
    if learn_block:
        for line in learn_block["body"].splitlines():
            if line.startswith(("- ", "* ")):
                learn.append(line[2:].strip())
            elif line.startswith("  ") and learn:  # a bullet's continuation line
                learn[-1] += " " + line.strip()
    show = re.compile(r"plt\.show\(|display\(|\.show\(\)|interact\(|FuncAnimation")
    return Outline(
        info=notebook,
        sections=re.findall(r"^## (.+?)\s*$", markdown, re.M),
        learn=learn,
        look_for=sum("**What to look for:**" in text for kind, text in cells if kind == "markdown"),
        figures=sum(bool(show.search(text)) for text in code),
        asserts=sum(len(re.findall(r"^\s*assert\b", text, re.M)) for text in code),
        setup=any(re.search(r"QUICK\s*=\s*bestiary\.quick\(\)", text) for text in code),
    )


# --------------------------------------------------------------------------------------------------
# execution


@dataclass
class CellFailure:
    """Where and why a notebook failed: enough to fix it without opening Jupyter."""

    notebook: str  # path of the .py source
    cell_index: int  # index among all cells of the notebook (markdown included), 0-based
    cell_source: str
    ename: str
    evalue: str
    traceback: str  # ANSI colours stripped
    line: int | None = None  # first line of the cell in the .py source, when it can be found

    def __str__(self) -> str:
        where = f"{self.notebook}:{self.line}" if self.line else self.notebook
        source = "\n".join(f"    {line}" for line in self.cell_source.splitlines())
        return (
            f"{where}: cell {self.cell_index} raised {self.ename}: {self.evalue}\n"
            f"--- cell {self.cell_index} source ---\n{source}\n"
            f"--- traceback ---\n{self.traceback}"
        )


@dataclass
class RunResult:
    """The outcome of executing one notebook."""

    info: NotebookInfo
    ok: bool
    seconds: float
    quick: bool
    failure: CellFailure | None = None
    notebook: Any = field(default=None, repr=False)  # the executed nbformat.NotebookNode

    def report(self) -> str:
        status = "ok" if self.ok else "FAILED"
        text = f"{self.info.id} {self.info.title}: {status} in {self.seconds:.1f} s"
        return text if self.ok else f"{text}\n{self.failure}"


def kernel_env(quick: bool, threads: int | None = None) -> dict[str, str]:
    """The environment a notebook kernel runs in (see the module docstring for why)."""
    env = dict(os.environ)
    env["BESTIARY_QUICK"] = "1" if quick else "0"
    env["MPLBACKEND"] = INLINE_BACKEND
    env["HF_HUB_OFFLINE"] = "1"
    env["TRANSFORMERS_OFFLINE"] = "1"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"  # silences a debugger warning in every kernel
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    return env


def _kernel_manager_class() -> type:
    """An AsyncKernelManager that launches ipykernel with this very interpreter."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ThisPythonKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any) -> None:
            # IPC sockets (files next to the connection file) instead of localhost TCP: nothing else on
            # the machine can talk to the kernel, and ipykernel stops warning about plain-text TCP
            # (a unique socket path per kernel: the default, ./kernel-ipc, is shared by parallel kernels)
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault(
                "ip", os.path.join(tempfile.gettempdir(), f"bestiary-{uuid.uuid4().hex[:12]}-ipc")
            )
            super().__init__(**kwargs)

        @property
        def kernel_spec(self) -> KernelSpec:
            return KernelSpec(
                argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                display_name=f"Python {sys.version_info.major}.{sys.version_info.minor} (bestiary)",
                language="python",
                metadata={},
            )

    return ThisPythonKernelManager


def read_notebook(path: Path) -> Any:
    """A percent-format `.py` file as an nbformat notebook (jupytext does the parsing)."""
    import jupytext

    nb = jupytext.read(path, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.pop("jupytext", None)  # the executed .ipynb stands alone (what Colab users download)
    return nb


def _failing_cell(nb: Any) -> tuple[int, Any] | None:
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and any(
            out.get("output_type") == "error" for out in cell.get("outputs", [])
        ):
            return index, cell
    return None


def _line_in_source(path: Path, cell_source: str) -> int | None:
    """The 1-based line where a code cell starts in the .py file (jupytext keeps code verbatim)."""
    first = next((line for line in cell_source.splitlines() if line.strip()), None)
    if first is None:
        return None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line == first:
            return number
    return None


def run_notebook(
    notebook: NotebookInfo | Path | str,
    *,
    quick: bool = False,
    threads: int | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    cwd: Path | None = None,
) -> RunResult:
    """Execute one notebook in a fresh kernel. Never raises for a failing cell: see `result.failure`.

    `notebook` is a NotebookInfo, an ID ("A01") or a path to a percent-format `.py` file.
    `cwd` defaults to the repository root (or the notebook's folder outside a checkout).
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(notebook, NotebookInfo):
        info = notebook
    elif Path(notebook).suffix == ".py" or Path(notebook).exists():
        info = notebook_info(Path(notebook))
    else:
        info = find([str(notebook)])[0]
    if cwd is None:
        try:
            cwd = repo_root(info.path.parent)
        except NotebookError:
            cwd = info.path.parent

    nb = read_notebook(info.path)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_manager_class=_kernel_manager_class(),
        resources={"metadata": {"path": str(cwd)}},
        allow_errors=False,
    )
    failure = None
    start = time.perf_counter()
    try:
        client.execute(env=kernel_env(quick, threads))
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        located = _failing_cell(nb)
        if located is not None:
            index, cell = located
            out = next(o for o in cell.outputs if o.get("output_type") == "error")
            failure = CellFailure(
                notebook=str(info.path),
                cell_index=index,
                cell_source=cell.source,
                ename=out.get("ename", type(error).__name__),
                evalue=out.get("evalue", ""),
                traceback=_ANSI.sub("", "\n".join(out.get("traceback", []))),
                line=_line_in_source(info.path, cell.source),
            )
        else:  # a timeout or a dead kernel leaves no error output: the last cell that started is to blame
            started = [
                i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "execution" in c.metadata
            ]
            index = started[-1] if started else 0
            source = nb.cells[index].source if nb.cells else ""
            failure = CellFailure(
                notebook=str(info.path),
                cell_index=index,
                cell_source=source,
                ename=type(error).__name__,
                evalue=_ANSI.sub("", str(error)).strip().splitlines()[-1] if str(error).strip() else "",
                traceback=_ANSI.sub("", str(error)),
                line=_line_in_source(info.path, source),
            )
        if isinstance(
            error, CellTimeoutError
        ):  # nbclient interrupted the cell: say why, not "KeyboardInterrupt"
            failure.ename = "CellTimeoutError"
            failure.evalue = f"the cell ran longer than the per-cell limit of {timeout} s (--timeout)"
    seconds = time.perf_counter() - start
    nb.metadata["bestiary"] = {
        "id": info.id,
        "quick": quick,
        "seconds": round(seconds, 2),
        "ok": failure is None,
    }
    return RunResult(
        info=info, ok=failure is None, seconds=seconds, quick=quick, failure=failure, notebook=nb
    )


# --------------------------------------------------------------------------------------------------
# rendering


def _site_css() -> str:
    from importlib.resources import files

    return files("bestiary.site").joinpath("style.css").read_text(encoding="utf-8")


# KaTeX (npm package `katex`, pinned in package.json) renders the notebooks' $...$ math offline;
# nbconvert's own MathJax comes from a CDN, which an offline reader cannot reach.
KATEX_FILES = ("katex.min.css", "katex.min.js", "contrib/auto-render.min.js")
KATEX_HEAD = (
    '<link rel="stylesheet" href="../katex/katex.min.css">'
    '<script defer src="../katex/katex.min.js"></script>'
    '<script defer src="../katex/contrib/auto-render.min.js" onload="renderMathInElement(document.body,'
    "{delimiters:[{left:'$$',right:'$$',display:true},{left:'$',right:'$',display:false}],"
    "ignoredClasses:['jp-CodeCell','jp-OutputArea'],throwOnError:false})\"></script>"
)


def copy_katex(site: Path) -> bool:
    """Copy KaTeX's script, stylesheet and woff2 fonts to `site/katex/`; False if it is not installed."""
    from bestiary.data._paths import DataSourceMissing, find_npm_package

    try:
        dist = (
            find_npm_package("katex", "dist/katex.min.js", install="npm install katex", source="KaTeX")
            / "dist"
        )
    except DataSourceMissing:
        return False
    target = site / "katex"
    (target / "contrib").mkdir(parents=True, exist_ok=True)
    (target / "fonts").mkdir(exist_ok=True)
    for name in KATEX_FILES:
        shutil.copyfile(dist / name, target / name)
    for font in (dist / "fonts").glob("*.woff2"):
        shutil.copyfile(font, target / "fonts" / font.name)
    return True


def render_html(result: RunResult) -> str:
    """The executed notebook as one self-contained HTML page (figures embedded as data: URIs),
    with a bar linking back to the index and to the downloadable .ipynb."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    exporter.embed_images = True  # markdown images too; plot outputs are data: URIs already
    body, _ = exporter.from_notebook_node(
        result.notebook, resources={"metadata": {"name": result.info.title}}
    )
    info = result.info
    status = "ran in quick mode" if result.quick else "ran in full mode"
    state = "ok" if result.ok else "failed"
    bar = (
        '<nav class="bestiary-nav">'
        '<a href="../index.html">&larr; all notebooks</a>'
        f'<span class="bestiary-id">{html.escape(info.id)}</span>'
        f'<span class="bestiary-title">{html.escape(info.title)}</span>'
        f'<span class="bestiary-meta status-{state}">{state}, {status} in {result.seconds:.0f} s</span>'
        f'<a href="../../notebooks/{info.track}/{info.stem}.ipynb" download>download .ipynb</a>'
        "</nav>"
    )
    style = (
        "<style>.bestiary-nav{position:sticky;top:0;z-index:100;display:flex;gap:1em;align-items:center;"
        "flex-wrap:wrap;padding:.6em 1.2em;background:#1f2937;color:#f9fafb;"
        "font:15px/1.4 system-ui,sans-serif}.bestiary-nav a{color:#93c5fd;text-decoration:none}"
        ".bestiary-nav a:hover{text-decoration:underline}.bestiary-id{font-weight:700}"
        ".bestiary-title{flex:1}.bestiary-meta{color:#d1d5db}.status-failed{color:#fca5a5;font-weight:700}"
        "</style>"
    )
    body = body.replace("</head>", style + KATEX_HEAD + "</head>", 1)
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + bar, body, count=1)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _inline_markdown(text: str) -> str:
    """`code`, **bold** and *italic* of a one-line Markdown snippet as HTML (everything else escaped)."""
    pieces = text.split("`")
    out = []
    for i, piece in enumerate(pieces):
        piece = html.escape(piece, quote=False)
        if i % 2 and i < len(pieces) - 1:  # inside a code span: no emphasis there
            out.append(f"<code>{piece}</code>")
            continue
        piece = re.sub(r"\*\*(?=\S)(.+?)(?<=\S)\*\*", r"<strong>\1</strong>", piece)
        piece = re.sub(r"(?<![\w*])\*(?=\S)([^*]+?)(?<=\S)\*(?![\w*])", r"<em>\1</em>", piece)
        out.append(piece if i % 2 == 0 else "`" + piece)
    return "".join(out)


def render_index(notebooks: Sequence[NotebookInfo], results: dict[str, dict[str, Any]]) -> str:
    """The site's front page: every discovered notebook, grouped by track, with its last run's
    status and time (`results` maps ID -> {"ok", "seconds", "quick"}; missing = not built)."""
    n_ok = sum(1 for nb in notebooks if results.get(nb.id, {}).get("ok") is True)
    n_failed = sum(1 for nb in notebooks if results.get(nb.id, {}).get("ok") is False)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>Bestiary notebooks</title><link rel='stylesheet' href='style.css'></head><body><main>",
        "<h1>Bestiary notebooks</h1>",
        "<p class='lead'>A field guide to neural network architectures. Each page is a notebook executed "
        "end to end; download the <code>.ipynb</code> from its page to run it yourself.</p>",
        f"<p class='summary'>{len(notebooks)} notebooks · <span class='ok'>{n_ok} ok</span> · "
        f"<span class='failed'>{n_failed} failed</span> · {len(notebooks) - n_ok - n_failed} not built</p>",
    ]
    for track in TRACKS:
        in_track = [nb for nb in notebooks if nb.track == track]
        if not in_track:
            continue
        parts.append(f"<section><h2>{html.escape(TRACK_TITLES[track])}</h2><table>")
        parts.append(
            "<thead><tr><th>ID</th><th>Notebook</th><th>Run time</th><th>Status</th></tr></thead><tbody>"
        )
        for nb in in_track:
            res = results.get(nb.id)
            title = html.escape(nb.title)
            if res is None:
                link, status, css = title, "not built", "none"
            else:
                link = f"<a href='{track}/{nb.stem}.html'>{title}</a>"
                mode = " (quick)" if res.get("quick") else ""
                status, css = ("ok" + mode, "ok") if res["ok"] else ("failed" + mode, "failed")
                if not res["ok"] and res.get("failure"):  # "F01_x.py:12: cell 3 raised ValueError: ..."
                    where = Path(res["failure"].splitlines()[0]).name
                    status += f"<div class='where'>{html.escape(_shorten(where, 90))}</div>"
            seconds = res.get("seconds") if res else None
            goals = "".join(f"<li>{_inline_markdown(goal)}</li>" for goal in outline(nb).learn)
            if goals:
                link += f"<details><summary>what you'll learn</summary><ul>{goals}</ul></details>"
            parts.append(
                f"<tr class='{css}'><td class='id'>{nb.id}</td><td>{link}</td>"
                f"<td class='time'>{_fmt_seconds(seconds)}</td><td class='status'>{status}</td></tr>"
            )
        parts.append("</tbody></table></section>")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    parts.append(
        f"<footer>Built {stamp} by <code>bestiary notebooks build</code>.</footer></main></body></html>"
    )
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------------
# building the site


@dataclass
class BuildResult:
    """What the build keeps of one run (picklable: it crosses process boundaries)."""

    id: str
    track: str
    stem: str
    title: str
    ok: bool
    seconds: float
    quick: bool
    failure: str | None  # str(CellFailure)
    ipynb: str
    html: str


def build_one(
    info: NotebookInfo, out_dir: Path, *, quick: bool, threads: int | None, timeout: int
) -> BuildResult:
    """Run one notebook and write its .ipynb and .html (also when it failed: the page shows the error)."""
    import nbformat

    result = run_notebook(info, quick=quick, threads=threads, timeout=timeout)
    ipynb = out_dir / "notebooks" / info.track / f"{info.stem}.ipynb"
    page = out_dir / "site" / info.track / f"{info.stem}.html"
    ipynb.parent.mkdir(parents=True, exist_ok=True)
    page.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(result.notebook, ipynb)
    page.write_text(render_html(result), encoding="utf-8")
    return BuildResult(
        id=info.id,
        track=info.track,
        stem=info.stem,
        title=info.title,
        ok=result.ok,
        seconds=result.seconds,
        quick=quick,
        failure=None if result.failure is None else str(result.failure),
        ipynb=str(ipynb),
        html=str(page),
    )


def _build_one_in_worker(args: tuple) -> BuildResult:
    info, out_dir, quick, threads, timeout = args
    try:
        return build_one(info, out_dir, quick=quick, threads=threads, timeout=timeout)
    except Exception as error:  # a broken .py (jupytext) or an nbconvert failure: report, keep going
        import traceback

        return BuildResult(
            id=info.id,
            track=info.track,
            stem=info.stem,
            title=info.title,
            ok=False,
            seconds=0.0,
            quick=quick,
            failure=f"{info.path}: {type(error).__name__}: {error}\n{traceback.format_exc()}",
            ipynb="",
            html="",
        )


def write_index(out_dir: Path, root: Path | None = None, new: Sequence[BuildResult] = ()) -> Path:
    """Merge `new` results into build/site/results.json and (re)write build/site/index.html.

    Results of earlier builds are kept, so building one notebook does not empty the index.
    """
    site = out_dir / "site"
    site.mkdir(parents=True, exist_ok=True)
    store = site / "results.json"
    results: dict[str, dict[str, Any]] = json.loads(store.read_text()) if store.exists() else {}
    for res in new:
        results[res.id] = {k: v for k, v in asdict(res).items() if k in ("ok", "seconds", "quick", "failure")}
    store.write_text(json.dumps(results, indent=1, sort_keys=True))
    notebooks = discover(root)
    live = {nb.id for nb in notebooks}
    results = {k: v for k, v in results.items() if k in live}  # a deleted notebook leaves the index
    (site / "style.css").write_text(_site_css(), encoding="utf-8")
    copy_katex(site)
    index = site / "index.html"
    index.write_text(render_index(notebooks, results), encoding="utf-8")
    return index


def build(
    ids: Sequence[str] = (),
    *,
    quick: bool = False,
    jobs: int = 2,
    out_dir: Path | None = None,
    root: Path | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> list[BuildResult]:
    """Execute notebooks (all, or the given IDs) with `jobs` parallel kernels and write the site.

    Failures do not stop the build; they are returned (and marked in the index).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    root = root or repo_root()
    out_dir = Path(out_dir) if out_dir else root / "build"
    chosen = find(ids, root) if ids else discover(root)
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    # one torch thread per kernel when kernels run side by side (see the module docstring)
    threads = 1 if jobs > 1 else None
    tasks = [(info, out_dir, quick, threads, timeout) for info in chosen]
    results: list[BuildResult] = []
    bar = tqdm(total=len(tasks), desc="notebooks", unit="nb", disable=not progress)
    if jobs == 1 or len(tasks) <= 1:
        for task in tasks:
            bar.set_postfix_str(task[0].id)
            results.append(_build_one_in_worker(task))
            bar.update()
    else:
        # "spawn": workers must not inherit a parent that may already hold torch threads or zmq sockets
        with ProcessPoolExecutor(max_workers=min(jobs, len(tasks)), mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(_build_one_in_worker, task) for task in tasks]
            for future in as_completed(futures):
                res = future.result()
                results.append(res)
                bar.set_postfix_str(f"{res.id} {'ok' if res.ok else 'FAILED'}")
                bar.update()
    bar.close()
    order = {info.id: i for i, info in enumerate(discover(root))}
    results.sort(key=lambda r: order.get(r.id, len(order)))
    write_index(out_dir, root, results)
    return results
