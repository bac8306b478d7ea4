#!/usr/bin/env python3
"""Write the metric reference into README.md from the golden files (tests/golden/*.prom).

    python scripts/metric_reference.py          # rewrite the section between the markers
    python scripts/metric_reference.py --check  # exit 1 when README.md is out of date

The golden files are what the exporter really serves for every fixture set, so the reference
cannot drift from the code: a test runs --check.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
START, END = "<!-- metric-reference:start -->", "<!-- metric-reference:end -->"
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created")


def families() -> dict[str, dict]:
    found: dict[str, dict] = {}
    for golden in sorted((REPO / "tests" / "golden").glob("*.prom")):
        helps: dict[str, str] = {}
        types: dict[str, str] = {}
        for line in golden.read_text().splitlines():
            if line.startswith("# HELP "):
                name, _, text = line[7:].partition(" ")
                helps[name] = text
            elif line.startswith("# TYPE "):
                name, _, kind = line[7:].partition(" ")
                types[name] = kind
            elif line and not line.startswith("#"):
                series = line.split(" ")[0]
                name = series.split("{")[0]
                family = name if name in types else _family_of(name, types)
                labels = set(re.findall(r'(\w+)="', series)) - {"le", "quantile"}
                entry = found.setdefault(family, {"labels": set()})
                entry["labels"] |= labels
        for name, kind in types.items():
            entry = found.setdefault(name, {"labels": set()})
            entry["type"] = kind
            entry["help"] = helps.get(name, "")
    return found


def _family_of(sample: str, types: dict[str, str]) -> str:
    for suffix in SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in types:
            return sample[: -len(suffix)]
    return sample


def render() -> str:
    rows = ["| metric | type | labels | meaning and source |", "| --- | --- | --- | --- |"]
    for name, f in sorted(families().items()):
        shown = name
        labels = ", ".join(f"`{label}`" for label in sorted(f["labels"])) or "–"
        help_text = f.get("help", "").replace("|", "\\|")
        rows.append(f"| `{shown}` | {f.get('type', '')} | {labels} | {help_text} |")
    return "\n".join(rows)


def updated(readme: str) -> str:
    head, _, rest = readme.partition(START)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{README}: markers {START} / {END} not found")
    return f"{head}{START}\n{render()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = README.read_text()
    new = updated(current)
    if "--check" in argv:
        if new != current:
            print("README.md's metric reference is out of date: run python scripts/metric_reference.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
