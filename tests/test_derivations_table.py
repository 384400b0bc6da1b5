"""docs/primitives.md's derivation table is the registry's: regenerate it with
``python experiments/derivations_table.py --write`` when a primitive or its derivation changes."""
from __future__ import annotations

import importlib.util
import pathlib

import fnnet

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _generator():
    spec = importlib.util.spec_from_file_location("derivations_table", ROOT / "experiments" / "derivations_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_derivation_table_is_in_sync_with_the_registry():
    gen = _generator()
    doc = gen.DOC.read_text()
    assert gen.rewrite(doc) == doc, "run: python experiments/derivations_table.py --write"


def test_every_primitive_declares_its_derivation():
    missing = sorted(name for name, prim in fnnet.registry().items() if not prim.derivation)
    assert missing == []
