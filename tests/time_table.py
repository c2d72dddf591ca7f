"""The suite's time table: a pytest plugin that reports where the time goes, against the budgets.

The whole suite must stay under 30 minutes on 2 cores when the catalog is full (267 architectures,
87 notebooks). That holds only if every piece keeps to its budget (CONTRIBUTING.md):

- a notebook in quick mode: <= 25 s, kernel start included;
- an architecture in the registry sweep: <= 1 s, all its sweep tests together, at the tiny config.

These are budgets to read, not timed tests (a loaded machine must not fail the suite): at the end of
`make test` this prints the slowest tests, every notebook's time and every architecture's sweep time,
flags what is over budget, and writes it all to build/test-times.json for the next change to act on.
Loaded by tests/conftest.py; with pytest-xdist the numbers are gathered on the controller.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import pytest

NOTEBOOK_BUDGET_S = 25.0
ARCHITECTURE_BUDGET_S = 1.0
SLOWEST = 15
OUTPUT = Path(__file__).resolve().parents[1] / "build" / "test-times.json"

_durations: dict[str, float] = defaultdict(float)  # test id -> setup + call + teardown seconds
_NOTEBOOK = re.compile(r"test_notebooks\.py::test_notebook_runs_in_quick_mode\[(?P<name>[^\]]+)\]")
_SWEEP = re.compile(r"test_registry\.py::test_\w+\[(?P<name>[^\]]+)\]")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _durations[report.nodeid] += report.duration


def _table(session_seconds: float) -> dict:
    notebooks = {
        m["name"]: round(seconds, 2) for test, seconds in _durations.items() if (m := _NOTEBOOK.search(test))
    }
    architectures: dict[str, float] = defaultdict(float)
    for test, seconds in _durations.items():
        if (m := _SWEEP.search(test)) and "test_preset_parameter_count" not in test:
            architectures[m["name"]] += seconds
    slowest = sorted(_durations.items(), key=lambda item: -item[1])[:SLOWEST]
    return {
        "suite_seconds": round(session_seconds, 1),
        "tests": len(_durations),
        "budgets": {"notebook_quick_s": NOTEBOOK_BUDGET_S, "architecture_sweep_s": ARCHITECTURE_BUDGET_S},
        "slowest_tests": [{"test": test, "seconds": round(seconds, 2)} for test, seconds in slowest],
        "notebooks_quick_s": dict(sorted(notebooks.items())),
        "architecture_sweep_s": {name: round(s, 3) for name, s in sorted(architectures.items())},
        "over_budget": {
            "notebooks": sorted(n for n, s in notebooks.items() if s > NOTEBOOK_BUDGET_S),
            "architectures": sorted(n for n, s in architectures.items() if s > ARCHITECTURE_BUDGET_S),
        },
    }


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _durations or hasattr(config, "workerinput"):  # only the controller reports
        return
    started = getattr(terminalreporter, "_sessionstarttime", None)
    elapsed = time.time() - started if isinstance(started, float) else sum(_durations.values())
    table = _table(elapsed)
    write = terminalreporter.write_line
    terminalreporter.section("time table (budgets: CONTRIBUTING.md)")
    write(f"slowest {len(table['slowest_tests'])} tests:")
    for row in table["slowest_tests"]:
        write(f"  {row['seconds']:7.2f} s  {row['test']}")
    if table["notebooks_quick_s"]:
        write(f"notebooks in quick mode (budget {NOTEBOOK_BUDGET_S:.0f} s each):")
        for name, seconds in table["notebooks_quick_s"].items():
            flag = "  OVER BUDGET" if seconds > NOTEBOOK_BUDGET_S else ""
            write(f"  {seconds:7.2f} s  {name}{flag}")
    sweep = table["architecture_sweep_s"]
    if sweep:
        over = table["over_budget"]["architectures"]
        total = sum(sweep.values())
        write(
            f"registry sweep: {len(sweep)} architectures, {total:.1f} s in all, slowest "
            f"{max(sweep, key=sweep.get)} {max(sweep.values()):.2f} s (budget {ARCHITECTURE_BUDGET_S:.0f} s each)"
            + (f"; over budget: {', '.join(over)}" if over else "")
        )
    try:
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(json.dumps(table, indent=2) + "\n")
        write(f"written to {OUTPUT}")
    except OSError as err:  # a read-only checkout still gets the printed table
        write(f"could not write {OUTPUT}: {err}")
