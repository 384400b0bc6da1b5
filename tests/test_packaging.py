"""The wheel: `python -m build` makes one that installs into a clean venv and imports from there.

Offline: the wheel is built with ``--no-isolation`` (the test extra brings setuptools and build), and
the clean venv gets fnnet from the wheel alone; its dependencies (jax, numpy, chex) are made visible
from this environment by a path file, so nothing is downloaded. ``make wheel`` does the same with an
isolated build and a venv that installs the dependencies from the package index.
"""
import importlib.metadata
import importlib.util
import os
import pathlib
import subprocess
import sys
import sysconfig
import venv
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _setuptools_is_new_enough() -> bool:
    try:
        major = int(importlib.metadata.version("setuptools").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return False
    return major >= 77  # the SPDX `license` string of pyproject.toml (PEP 639)


pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None or not _setuptools_is_new_enough(),
    reason="needs the test extra (build, setuptools>=77): pip install -e '.[test]'",
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, text=True,
    )
    (whl,) = out.glob("fnnet-*.whl")
    return whl


def test_wheel_holds_every_package_the_license_and_the_type_marker(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for module in ("fnnet/__init__.py", "fnnet/__main__.py", "fnnet/activations/_smooth.py",
                   "fnnet/check/gradcheck.py", "fnnet/parallel.py", "fnnet/py.typed"):
        assert module in names, module
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: Apache-2.0" in text
    assert not any(n.startswith(("tests/", "experiments/", "docs/")) for n in names)


def test_wheel_installs_and_imports_in_a_clean_venv(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # fnnet from the wheel alone: unpacked as pip would, into the venv's own site-packages
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    # its dependencies from this environment, after the venv's own packages on sys.path
    pathlib.Path(site, "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    code = (
        "import fnnet, jax, jax.numpy as jnp; "
        "assert fnnet.__file__.startswith(%r), fnnet.__file__; "
        "print(float(jax.grad(fnnet.sigmoid)(0.0)))" % site
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no source tree on the path
    run = subprocess.run([str(python), "-c", code], cwd=tmp_path, capture_output=True, text=True, env=clean)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0.25"
    version = subprocess.run([str(python), "-m", "fnnet", "--version"], cwd=tmp_path,
                             capture_output=True, text=True)
    assert version.stdout.strip() == f"fnnet {importlib.metadata.version('fnnet')}", version
