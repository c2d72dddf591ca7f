"""Execution: run one notebook in a fresh Jupyter kernel (jupytext -> nbformat -> nbclient).

`run_notebook()` never raises for a failing cell; it returns a `RunResult` whose `failure` is a
`CellFailure`: the failing cell's index, source, line in the `.py` file and the traceback.

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

import os
import re
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bestiary.notebooks.discovery import NotebookError, NotebookInfo, find, notebook_info, repo_root

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

#: per-cell time limit in seconds (a quick-mode notebook should take about a minute in total)
DEFAULT_TIMEOUT = 1200
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


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
