"""Print the README's "What exists" tables from the live registry and the notebook folder.

.venv/bin/python scripts/status_table.py
"""

import csv
import io
from collections import defaultdict
from pathlib import Path

import bestiary
from bestiary.notebooks import discover

catalog = defaultdict(list)
text = (Path(bestiary.__file__).with_name("catalog.tsv")).read_text()
for row in csv.reader(io.StringIO(text), delimiter="\t"):
    if row and not row[0].startswith("#"):
        catalog[row[0]].append(row[1])

print("| family | registered / catalog | models | presets |")
print("|---|---|---|---|")
total = 0
waiting = []
for family in sorted(
    catalog, key=lambda f: (-len(bestiary.list_models(f)) if f in bestiary.families() else 0, f)
):
    names = bestiary.list_models(family) if family in bestiary.families() else []
    total += sum(bestiary.card(n).in_catalog for n in names)  # reference models outside the catalog don't count
    if not names:
        waiting.append(f"{family} ({len(catalog[family])})")
        continue
    presets = [p for n in names for p in bestiary.list_presets(n)]
    print(
        f"| {family} | {sum(bestiary.card(n).in_catalog for n in names)} / {len(catalog[family])} "
        f"| {', '.join(f'`{n}`' if bestiary.card(n).in_catalog else f'`{n}` (reference)' for n in names) or '—'} "
        f"| {', '.join(presets) or '—'} |"
    )
print(f"\nNot started yet: {', '.join(waiting)}.")
print(f"\n**{total} of {sum(map(len, catalog.values()))}** catalog architectures registered.\n")

print("| ID | track | notebook |")
print("|---|---|---|")
for nb in discover():
    print(f"| {nb.id} | {nb.track} | [{nb.title}]({nb.path.relative_to(Path.cwd())}) |")
