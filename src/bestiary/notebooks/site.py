"""The site: render executed notebooks as HTML pages and an index, and build it all.

`build()` runs notebooks (several kernels in parallel) and writes, under `build/`:

- `notebooks/<track>/<ID>_<slug>.ipynb`: the executed notebooks (what Colab users download);
- `site/<track>/<ID>_<slug>.html`: one self-contained page per notebook, figures embedded;
- `site/index.html`: every notebook grouped by track, with its last run's status and time
  (`site/results.json` keeps earlier results, so building one notebook does not empty the index);
- `site/catalog.html`: every catalog architecture, its paper, parameter counts, oracle tests and
  the notebooks that use it, searchable (`bestiary.notebooks.catalog_page`);
- a short "not built yet" page for every notebook that has not been built, so that the
  previous / next links of every page lead somewhere;
- `site/style.css` (from the `bestiary.site` package, which holds the static assets) and
  `site/katex/` (math rendered offline).

A failed notebook still gets its page, showing the error, and is marked in the index.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bestiary.notebooks.discovery import TRACK_TITLES, TRACKS, NotebookInfo, discover, find, repo_root
from bestiary.notebooks.execution import DEFAULT_TIMEOUT, RunResult, run_notebook
from bestiary.notebooks.structure import outline

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


# an empty icon: without one, every page asks the server for /favicon.ico and logs a 404
NO_FAVICON = "<link rel='icon' href='data:,'>"


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


def _neighbour_links(info: NotebookInfo, notebooks: Sequence[NotebookInfo]) -> str:
    """Links to the previous and next lesson (in the index's order), from a notebook's page."""
    ids = [nb.id for nb in notebooks]
    if info.id not in ids:
        return ""
    i = ids.index(info.id)
    links = []
    if i > 0:
        prev = notebooks[i - 1]
        links.append(
            f'<a class="prev" href="../{prev.track}/{prev.stem}.html">&larr; {html.escape(prev.id)}</a>'
        )
    if i + 1 < len(notebooks):
        nxt = notebooks[i + 1]
        links.append(
            f'<a class="next" href="../{nxt.track}/{nxt.stem}.html">{html.escape(nxt.id)} &rarr;</a>'
        )
    return "".join(links)


def render_html(result: RunResult, notebooks: Sequence[NotebookInfo] = ()) -> str:
    """The executed notebook as one self-contained HTML page (figures embedded as data: URIs),
    with a bar linking back to the index and the catalog, to the previous and next lessons
    (`notebooks`: the site's notebooks in order), and to the downloadable .ipynb."""
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
        '<a href="../index.html">&uarr; all notebooks</a>'
        '<a href="../catalog.html">catalog</a>'
        f"{_neighbour_links(info, notebooks)}"
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
    # nbconvert's template loads require.js and MathJax from a CDN, which an offline reader cannot
    # reach (the browser logs the failures, and MathJax would fight KaTeX): the page does without
    body = re.sub(r'<script src="https?://[^"]*"[^>]*>\s*</script>', "", body)
    body = re.sub(r'<script type="text/x-mathjax-config">.*?</script>', "", body, flags=re.S)
    body = body.replace("</head>", style + KATEX_HEAD + NO_FAVICON + "</head>", 1)
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
        "<title>Bestiary notebooks</title><link rel='stylesheet' href='style.css'>",
        f"{NO_FAVICON}</head><body><main>",
        "<h1>Bestiary notebooks</h1>",
        "<nav class='site-nav'><a href='catalog.html'>The catalog: every architecture, its paper, sizes, "
        "oracle tests and notebooks &rarr;</a></nav>",
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
    page.write_text(render_html(result, discover(info.path.parents[2])), encoding="utf-8")
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
    for nb in notebooks:  # every page's previous / next link must lead somewhere
        page = site / nb.track / f"{nb.stem}.html"
        if not page.exists():
            page.parent.mkdir(parents=True, exist_ok=True)
            page.write_text(render_unbuilt(nb, notebooks), encoding="utf-8")
    from bestiary.notebooks.catalog_page import render_catalog

    (site / "catalog.html").write_text(render_catalog(root or repo_root(), notebooks), encoding="utf-8")
    index = site / "index.html"
    index.write_text(render_index(notebooks, results), encoding="utf-8")
    return index


def render_unbuilt(info: NotebookInfo, notebooks: Sequence[NotebookInfo]) -> str:
    """The page of a notebook that has not been built: how to build it, and the way on."""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(info.id)}: not built</title><link rel='stylesheet' href='../style.css'>"
        f"{NO_FAVICON}</head>"
        "<body><main><nav class='site-nav'><a href='../index.html'>&uarr; all notebooks</a> "
        f"{_neighbour_links(info, notebooks)}</nav>"
        f"<h1>{html.escape(info.id)}: {html.escape(info.title)}</h1>"
        f"<p>Not built yet. Run <code>bestiary notebooks build {html.escape(info.id)}</code>.</p>"
        "</main></body></html>"
    )


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
    # one torch thread per kernel when kernels run side by side (see bestiary.notebooks.execution)
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


# --------------------------------------------------------------------------------------------------
# serving the site

DEFAULT_PORT = 8765


def make_server(build_dir: Path, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1"):
    """An HTTP server for `build_dir` (the folder holding site/ and notebooks/, so that the pages'
    .ipynb download links work), with / redirecting to /site/index.html. Bound to 127.0.0.1 by
    default: the site is for this machine, not the network. `port=0` picks a free port."""
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    build_dir = Path(build_dir)
    if not (build_dir / "site" / "index.html").exists():
        raise FileNotFoundError(
            f"no site in {build_dir}: build it first with `bestiary notebooks build --quick` (or `make demo`)"
        )

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 -- the http.server API's name
            if self.path in ("/", "/index.html"):
                self.send_response(302)
                self.send_header("Location", "/site/index.html")
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 -- quiet by default
            pass

    return ThreadingHTTPServer((host, port), partial(Handler, directory=str(build_dir)))
