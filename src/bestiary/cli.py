"""The `bestiary` command line.

    bestiary list [--family F] [--params]     the registered architectures
    bestiary info NAME                         a model's card, parameter count, per-module table
    bestiary notebooks list                    the curriculum's notebooks
    bestiary notebooks run ID [--quick]        execute one notebook in a fresh kernel
    bestiary notebooks build [--quick] [--jobs N] [ID ...]
                                               executed .ipynb + HTML site under build/
    bestiary bench [list | run NAME]           the scripts in benchmarks/

A mistake (an unknown model, family or notebook) prints one line saying what went wrong and what
was probably meant, and exits with status 2 — no traceback.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_USAGE = 2


class CLIError(Exception):
    """A user mistake: printed as one line, exit status 2."""


def _table(rows: Sequence[Sequence[Any]], headers: Sequence[str], align: str = "") -> str:
    """A plain-text table; `align` has one 'l' or 'r' per column (default: left)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    align = align or "l" * len(headers)

    def fmt(row: list[str]) -> str:
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(row, widths, align)]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(cells[0]), rule, *(fmt(row) for row in cells[1:])])


def _fmt_count(n: int | None) -> str:
    return "—" if n is None else f"{n:,}"


def _human(n: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 1)] + "…"


# --------------------------------------------------------------------------------------------------
# models


def _build_for_counting(name: str, **kwargs: Any) -> Any:
    """Build a model without allocating its weights when possible (torch's meta device), so that
    `info` on a billion-parameter preset is instant. Models whose constructor needs real numbers
    (e.g. an orthogonal init computed with NumPy) fall back to an ordinary build."""
    import torch

    import bestiary

    try:
        with torch.device("meta"):
            return bestiary.build(name, **kwargs)
    except (bestiary.RegistryError, bestiary.ConfigError):
        raise
    except Exception:
        return bestiary.build(name, **kwargs)


def cmd_list(args: argparse.Namespace) -> int:
    import bestiary

    names = bestiary.list_models(args.family)
    headers = ["name", "family", "summary"]
    rows = []
    for name in names:
        card = bestiary.card(name)
        row = [name, card.family]
        if args.params:
            row.append(_human(bestiary.count_params(_build_for_counting(name, tiny=True))))
            row.append(_human(bestiary.count_params(_build_for_counting(name))))
        rows.append([*row, card.summary])
    if args.params:
        headers = ["name", "family", "tiny", "default", "summary"]
    width = shutil.get_terminal_size((120, 24)).columns
    used = sum(max(len(str(r[i])) for r in [headers, *rows]) + 2 for i in range(len(headers) - 1))
    rows = [[*r[:-1], _shorten(r[-1], max(width - used, 30))] for r in rows]
    print(_table(rows, headers, align="ll" + ("rr" if args.params else "") + "l"))
    families = sorted({bestiary.card(n).family for n in names})
    print(f"\n{len(names)} models in {len(families)} families. `bestiary info NAME` shows one.")
    return 0


def module_table(model: Any) -> list[tuple[str, str, int, float]]:
    """(name, class, parameters, % of total) for each top-level child, plus the model's own
    parameters if it has any. Tied weights count once in the total, so rows may add up to more."""
    import bestiary

    total = bestiary.count_params(model) or 1
    rows = []
    own = sum(p.numel() for p in model.parameters(recurse=False))
    if own:
        rows.append(("(own parameters)", "", own, 100 * own / total))
    for name, child in model.named_children():
        n = bestiary.count_params(child)
        rows.append((name, type(child).__name__, n, 100 * n / total))
    return rows


def cmd_info(args: argparse.Namespace) -> int:
    import bestiary
    from bestiary.registry import resolve

    card, preset = resolve(args.name)
    print(card)
    config = bestiary.config(args.name)
    what = f"preset {preset!r}" if preset else "the default config"
    print(f"\nConfig ({what}): {config}")
    tiny = card.make_config(True)
    print(f"Tiny config (tiny=True): {tiny}")

    model = _build_for_counting(args.name)
    total = bestiary.count_params(model)
    print(f"\nParameters ({what}): {total:,} ({_human(total)})")
    if preset:
        published = card.presets[preset].params
        source = card.presets[preset].source
        if published is not None:
            verdict = "matches" if published == total else f"differs by {total - published:+,}"
            print(f"Published: {published:,} ({source}) — {verdict}")
    elif card.presets:
        rows = [[p, _fmt_count(pr.params), pr.source] for p, pr in card.presets.items()]
        print("\nPresets (build by name, e.g. `bestiary.build(NAME)`):")
        print(_table(rows, ["preset", "published params", "source"], align="lrl"))

    rows = [(n, cls, f"{c:,}", f"{pct:.1f}%") for n, cls, c, pct in module_table(model)]
    if rows:
        print("\nTop-level modules:")
        print(_table(rows, ["module", "type", "params", "share"], align="llrr"))
    return 0


# --------------------------------------------------------------------------------------------------
# notebooks


def cmd_notebooks_list(args: argparse.Namespace) -> int:
    from bestiary import notebooks

    found = notebooks.discover()
    root = notebooks.repo_root()
    rows = [[nb.id, nb.track, nb.title, nb.path.relative_to(root)] for nb in found]
    print(_table(rows, ["ID", "track", "title", "path"]))
    print(f"\n{len(found)} notebooks. `bestiary notebooks run ID --quick` runs one.")
    return 0


def cmd_notebooks_run(args: argparse.Namespace) -> int:
    from bestiary import notebooks

    info = notebooks.find([args.id])[0]
    mode = "quick" if args.quick else "full"
    print(f"running {info.id} ({info.path.name}) in {mode} mode ...", flush=True)
    result = notebooks.run_notebook(info, quick=args.quick, timeout=args.timeout)
    print(result.report())
    return 0 if result.ok else 1


def cmd_notebooks_build(args: argparse.Namespace) -> int:
    from bestiary import notebooks

    out = Path(args.out) if args.out else None
    results = notebooks.build(args.ids, quick=args.quick, jobs=args.jobs, out_dir=out, timeout=args.timeout)
    root = notebooks.repo_root()
    index = (out or root / "build") / "site" / "index.html"
    rows = [[r.id, r.title, f"{r.seconds:.1f} s", "ok" if r.ok else "FAILED"] for r in results]
    print(_table(rows, ["ID", "title", "time", "status"], align="llrl"))
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"\n=== {r.id} FAILED ===\n{r.failure}", file=sys.stderr)
    total = sum(r.seconds for r in results)
    print(
        f"\n{len(results) - len(failed)}/{len(results)} ok ({total:.0f} s of notebook time). Index: {index}"
    )
    return 1 if failed else 0


def cmd_site_serve(args: argparse.Namespace) -> int:
    from bestiary.notebooks import repo_root
    from bestiary.notebooks.site import make_server

    build_dir = Path(args.dir) if args.dir else repo_root() / "build"
    server = make_server(build_dir, port=args.port, host=args.host)
    host, port = server.server_address[:2]
    print(f"Serving {build_dir} at http://{host}:{port}/site/index.html (Ctrl-C to stop)")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


# --------------------------------------------------------------------------------------------------
# benchmarks


def _benchmarks() -> dict[str, Path]:
    from bestiary.notebooks import repo_root

    folder = repo_root() / "benchmarks"
    return {p.stem: p for p in sorted(folder.glob("*.py")) if not p.name.startswith("_")}


def cmd_bench(args: argparse.Namespace) -> int:
    scripts = _benchmarks()
    if args.action == "list" or args.action is None:
        if not scripts:
            print("no benchmark scripts in benchmarks/")
            return 0
        rows = []
        for name, path in scripts.items():
            first = path.read_text(encoding="utf-8").strip().splitlines()
            doc = next((line.strip().strip('"').strip() for line in first if line.strip().strip('"')), "")
            rows.append([name, _shorten(doc, 80)])
        print(_table(rows, ["benchmark", "what it measures"]))
        return 0
    if args.name not in scripts:
        import difflib

        close = difflib.get_close_matches(args.name or "", list(scripts), n=3)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise CLIError(f"unknown benchmark {args.name!r}.{hint} (`bestiary bench list` lists all)")
    return subprocess.call([sys.executable, str(scripts[args.name]), *args.rest])


# --------------------------------------------------------------------------------------------------


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bestiary",
        description="A field guide to neural network architectures: models, notebooks, benchmarks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="list the registered architectures")
    p.add_argument("--family", "-f", help="only this family (e.g. feedforward, ssm, vision)")
    p.add_argument("--params", action="store_true", help="also count parameters (tiny and default configs)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("info", help="a model's card, parameter count and per-module table")
    p.add_argument("name", help="a model or preset name, e.g. mlp, mamba, resnet18")
    p.set_defaults(func=cmd_info)

    nb = sub.add_parser("notebooks", help="list, run or build the curriculum's notebooks")
    nb_sub = nb.add_subparsers(dest="nb_command", metavar="ACTION")
    nb_sub.required = True
    p = nb_sub.add_parser("list", help="the notebooks found under notebooks/")
    p.set_defaults(func=cmd_notebooks_list)
    for action, helptext in (
        ("run", "execute one notebook"),
        ("build", "execute notebooks and write build/"),
    ):
        p = nb_sub.add_parser(action, help=helptext)
        if action == "run":
            p.add_argument("id", help="notebook ID, e.g. F01")
            p.set_defaults(func=cmd_notebooks_run)
        else:
            p.add_argument("ids", nargs="*", metavar="ID", help="notebook IDs (default: all)")
            p.add_argument(
                "--jobs", "-j", type=_positive, default=2, help="notebooks run in parallel (default 2)"
            )
            p.add_argument("--out", help="output folder (default: build/ in the repository root)")
            p.set_defaults(func=cmd_notebooks_build)
        p.add_argument("--quick", action="store_true", help="quick mode (BESTIARY_QUICK=1), as in CI")
        p.add_argument("--timeout", type=int, default=1200, help="per-cell time limit in seconds")

    site = sub.add_parser("site", help="serve the built site (build/site) on this machine")
    site_sub = site.add_subparsers(dest="site_command", metavar="ACTION")
    site_sub.required = True
    p = site_sub.add_parser("serve", help="serve build/ at http://127.0.0.1:8765/site/index.html")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    p.add_argument("--dir", help="the build folder holding site/ (default: build/ in the repository root)")
    p.set_defaults(func=cmd_site_serve)

    p = sub.add_parser("bench", help="list or run the scripts in benchmarks/")
    p.add_argument("action", nargs="?", choices=["list", "run"], default="list")
    p.add_argument("name", nargs="?", help="benchmark script name (without .py)")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments passed to the script")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `bestiary` console script; returns the exit status."""
    parser = make_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("bestiary: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if not isinstance(error, _user_errors()):
            raise  # a bug, not a mistake: keep the traceback
        print(f"bestiary: error: {error}", file=sys.stderr)
        return EXIT_USAGE


def _user_errors() -> tuple[type[Exception], ...]:
    """The exceptions that mean "you asked for something that does not exist". The registry's are
    looked up only if it was imported, so `bestiary notebooks list` never pays for importing torch."""
    from bestiary.notebooks import NotebookError

    errors: list[type[Exception]] = [CLIError, NotebookError]
    registry = sys.modules.get("bestiary.registry")
    if registry is not None:
        errors += [registry.RegistryError, registry.ConfigError]
    return tuple(errors)


if __name__ == "__main__":
    sys.exit(main())
