"""The lesson structure lint: read a notebook's source (no kernel) and check it follows DESIGN.md.

DESIGN.md ("Notebooks") fixes the shape of a lesson: title -> *What you'll learn* -> setup cell
(`QUICK = bestiary.quick()`) -> sections, each figure preceded by *What to look for* -> an assert on
the outcome -> *Experiments to try*. `outline()` reads those parts from the percent file;
`Outline.problems` names the conventions a notebook breaks. The site's index shows the learning
goals it finds, and `tests/test_notebooks.py` fails a notebook whose outline has problems.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bestiary.notebooks.discovery import NotebookInfo


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
