"""docs/reference/primitives.md's derivation table from the registry: one row per primitive, its one-line
derivation (``Primitive.derivation``, declared beside the rule it justifies). The site build inserts it
between the page's markers (tools/mkdocs_hooks.py), so the committed page never goes stale.

    python -m experiments.derivations_table          # print the table
"""
from __future__ import annotations

import pathlib

import fnnet  # importing fnnet registers every primitive

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reference" / "primitives.md"
BEGIN = "<!-- derivations: the table is inserted here when the site is built (tools/mkdocs_hooks.py) -->"
END = "<!-- end of derivations -->"


def table() -> str:
    """The Markdown table, registry order: the module that declares each primitive, then its name."""
    rows = ["| primitive | declared in | derivation |", "|---|---|---|"]
    for name, prim in fnnet.registry().items():
        module = prim.forward.__module__.removeprefix("fnnet.")
        text = prim.derivation.replace("|", "\\|") or "—"
        rows.append(f"| `{name}` | `{module}` | {text} |")
    return "\n".join(rows)


def rewrite(doc: str) -> str:
    """``doc`` with the text between the markers replaced by the current table."""
    head, rest = doc.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> None:
    print(table())


if __name__ == "__main__":
    main()
