"""Type annotations of the public surface: complete (every parameter and return of the public names
of these modules), and consistent (mypy finds no error in them).

mypy comes with the test extra; the check is skipped without it.
"""
import importlib
import importlib.util
import inspect
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: module -> the public names it owns (None: its __all__)
MODULES = {
    "fnnet.graph": None,
    "fnnet.calculus": None,
    "fnnet.train": None,
    "fnnet.parallel": None,
    "fnnet.datasets": None,
    "fnnet.layers": ["init_dense", "init_mlp", "mlp"],
    "fnnet.verify": ["check_primitive", "iter_verify", "verify", "format_table", "verdict", "main"],
}
CHECKED_FILES = ["fnnet/graph.py", "fnnet/calculus.py", "fnnet/train.py", "fnnet/parallel.py", "fnnet/datasets.py",
                 "fnnet/layers.py", "fnnet/verify.py", "fnnet/__main__.py", "fnnet/_cli.py"]


def _functions(module, names):
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj):
            for attr, value in vars(obj).items():
                if inspect.isfunction(value) and (not attr.startswith("_") or attr == "__init__"):
                    yield f"{name}.{attr}", value
        elif inspect.isfunction(obj):
            yield name, obj


def unannotated(module_name, names=None):
    module = importlib.import_module(module_name)
    missing = []
    for name, fn in _functions(module, names or module.__all__):
        sig = inspect.signature(fn)
        params = [p for p, v in sig.parameters.items() if v.annotation is inspect.Parameter.empty
                  and p not in ("self", "cls")]
        if params:
            missing.append(f"{module_name}.{name}: parameters {params}")
        if sig.return_annotation is inspect.Signature.empty:
            missing.append(f"{module_name}.{name}: return")
    return missing


@pytest.mark.parametrize("module", list(MODULES))
def test_public_functions_are_annotated(module):
    assert not unannotated(module, MODULES[module])


def test_the_completeness_check_sees_a_missing_annotation(monkeypatch):
    import fnnet.datasets

    def untyped(x, y: int):
        return x

    monkeypatch.setattr(fnnet.datasets, "untyped", untyped, raising=False)
    assert unannotated("fnnet.datasets", ["untyped"]) == [
        "fnnet.datasets.untyped: parameters ['x']", "fnnet.datasets.untyped: return"]


@pytest.mark.skipif(importlib.util.find_spec("mypy") is None, reason="needs the test extra (mypy)")
def test_mypy_finds_no_error():
    run = subprocess.run([sys.executable, "-m", "mypy", *CHECKED_FILES], cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
