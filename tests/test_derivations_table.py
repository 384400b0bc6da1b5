"""docs/reference/primitives.md's derivation table is generated from the registry when the site is built."""
from __future__ import annotations

import fnnet
from experiments import derivations_table


def test_the_built_page_has_one_row_per_primitive():
    doc = derivations_table.DOC.read_text()
    assert derivations_table.BEGIN in doc and derivations_table.END in doc
    built = derivations_table.rewrite(doc)
    for name, prim in fnnet.registry().items():
        assert f"| `{name}` |" in built, name
    assert derivations_table.rewrite(built) == built  # idempotent: the markers survive


def test_every_primitive_declares_its_derivation():
    missing = sorted(name for name, prim in fnnet.registry().items() if not prim.derivation)
    assert missing == []
