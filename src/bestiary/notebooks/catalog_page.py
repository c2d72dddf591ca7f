"""The site's catalog page: every architecture of the catalog, what exists of it, and where it is used.

One row per name in `catalog.tsv` (the plan) plus the registered reference models outside it. For a
registered architecture the row says its paper (title, year, arXiv link), the parameter count of its
default configuration and of each published preset (counted on the meta device: no memory, no
initialisation), its oracle tests (the test functions in tests/models/<family>/test_<name>.py that
compare it with a reference), and the notebooks that build it. A search box and a family filter
narrow the table with a few lines of plain JavaScript (no build step, works from file://).
"""

from __future__ import annotations

import csv
import html
import io
import re
from pathlib import Path

from bestiary.notebooks.discovery import NotebookInfo

# a test that compares with a reference says so in its name
_ORACLE_WORDS = re.compile(r"match|equal|oracle|against|same_as|like_torch|reference")


def catalog_rows() -> list[tuple[str, str, str]]:
    """(family, name, description) for every line of the packaged catalog.tsv."""
    import bestiary

    text = Path(bestiary.__file__).with_name("catalog.tsv").read_text(encoding="utf-8")
    return [
        (row[0], row[1], row[2] if len(row) > 2 else "")
        for row in csv.reader(io.StringIO(text), delimiter="\t")
        if row and not row[0].startswith("#")
    ]


def oracle_tests(root: Path, family: str, name: str) -> list[str]:
    """Names of the reference-comparing tests of one model (empty if it has none)."""
    path = root / "tests" / "models" / family / f"test_{name}.py"
    if not path.exists():
        return []
    tests = re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M)
    return [t for t in tests if _ORACLE_WORDS.search(t)]


def notebooks_using(notebooks: list[NotebookInfo], names: list[str]) -> list[NotebookInfo]:
    """The notebooks whose source builds one of `names` (a model or one of its presets)."""
    alternatives = "|".join(map(re.escape, names))
    pattern = re.compile(rf"""build(?:_lm)?\(\s*["']({alternatives})["']""")
    return [nb for nb in notebooks if pattern.search(nb.path.read_text(encoding="utf-8"))]


def _param_count(name: str) -> int:
    import torch

    import bestiary

    try:
        with torch.device("meta"):  # shapes only: even a 600M-parameter preset costs nothing
            return bestiary.count_params(bestiary.build(name))
    except (NotImplementedError, RuntimeError):  # an initialisation that must compute (KAN's spline fit)
        return bestiary.count_params(bestiary.build(name))


def _millions(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count:,}"


def render_catalog(root: Path, notebooks: list[NotebookInfo]) -> str:
    """The catalog page (HTML). Links to notebook pages are relative to site/catalog.html."""
    import bestiary

    rows = catalog_rows()
    in_catalog = {name for _, name, _ in rows}
    registered = set(bestiary.list_models())
    references = [
        (bestiary.card(n).family, n, bestiary.card(n).summary + " (a reference model outside the catalog)")
        for n in sorted(registered - in_catalog)
    ]
    families = sorted({family for family, _, _ in rows + references})
    body = []
    for family, name, description in rows + references:
        if name not in registered:
            body.append(
                f"<tr data-family='{family}' data-name='{name}' class='planned'><td>{family}</td>"
                f"<td class='name'>{name}</td><td>{html.escape(description)}</td>"
                "<td colspan='4' class='status'>planned</td></tr>"
            )
            continue
        card = bestiary.card(name)
        paper = html.escape(card.paper) + (f" ({card.year})" if card.year else "")
        if card.arxiv:
            paper = f"<a href='https://arxiv.org/abs/{card.arxiv}'>{paper}</a>"
        sizes = [f"default {_millions(_param_count(name))}"]
        sizes += [f"{p} {_millions(card.presets[p].params or _param_count(p))}" for p in card.presets]
        oracles = oracle_tests(root, family, name)
        oracle = "<br>".join(f"<code>{t}</code>" for t in oracles) if oracles else "—"
        used = notebooks_using(notebooks, [name, *card.presets])
        used_links = ", ".join(f"<a href='{nb.track}/{nb.stem}.html'>{nb.id}</a>" for nb in used) or "—"
        body.append(
            f"<tr data-family='{family}' data-name='{name}' class='registered'><td>{family}</td>"
            f"<td class='name'><code>{name}</code></td><td>{html.escape(card.summary)}</td>"
            f"<td>{paper}</td><td class='sizes'>{'<br>'.join(sizes)}</td><td>{oracle}</td>"
            f"<td>{used_links}</td></tr>"
        )
    options = "".join(f"<option value='{f}'>{f}</option>" for f in families)
    n_done = len(registered & in_catalog)
    return f"""<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>
<meta name='viewport' content='width=device-width, initial-scale=1'>
<title>Bestiary catalog</title><link rel='stylesheet' href='style.css'><link rel='icon' href='data:,'>
</head><body><main class='wide'>
<nav class='site-nav'><a href='index.html'>&larr; all notebooks</a></nav>
<h1>The catalog</h1>
<p class='lead'>{n_done} of {len(rows)} catalog architectures are implemented and tested; the rest are
planned. Parameter counts are exact (published presets reproduce their paper's count).</p>
<p class='filters'><input id='search' type='search' placeholder='search by name' aria-label='search by name'>
<select id='family' aria-label='family'><option value=''>all families</option>{options}</select>
<span id='shown'></span></p>
<table id='catalog'><thead><tr><th>family</th><th>name</th><th>what it is</th><th>paper</th>
<th>parameters</th><th>oracle tests</th><th>notebooks</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
<script>
const search = document.getElementById('search'), family = document.getElementById('family');
function filter() {{
  const q = search.value.trim().toLowerCase(), f = family.value;
  let shown = 0;
  for (const row of document.querySelectorAll('#catalog tbody tr')) {{
    const keep = row.dataset.name.includes(q) && (!f || row.dataset.family === f);
    row.hidden = !keep;
    shown += keep;
  }}
  document.getElementById('shown').textContent = shown + ' shown';
}}
search.addEventListener('input', filter);
family.addEventListener('change', filter);
filter();
</script>
</main></body></html>
"""
