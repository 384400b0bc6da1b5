"""docs/primitives.md's derivation table is the registry's: regenerate it with
``python -m experiments.derivations_table --write`` when a primitive or its derivation changes."""
from __future__ import annotations

import fnnet
from experiments import derivations_table


def test_derivation_table_is_in_sync_with_the_registry():
    doc = derivations_table.DOC.read_text()
    assert derivations_table.rewrite(doc) == doc, "run: python -m experiments.derivations_table --write"


def test_every_primitive_declares_its_derivation():
    missing = sorted(name for name, prim in fnnet.registry().items() if not prim.derivation)
    assert missing == []
