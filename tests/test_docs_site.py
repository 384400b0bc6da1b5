"""``make docs``: the site and its API reference build with --strict (every warning an error).

Skipped when the docs extra (mkdocs, mkdocstrings) is not installed: ``pip install -e '.[docs]'``.
"""
import importlib
import importlib.util
import logging
import pathlib
import subprocess
import sys
import types

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
needs_docs = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python")),
    reason="needs the docs extra: pip install -e '.[docs]'",
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out


@needs_docs
@pytest.mark.parametrize("module", ["activations", "layers", "losses", "ops", "graph", "calculus", "train",
                                    "parallel", "datasets"])
def test_every_public_name_has_its_reference_entry(site, module):
    names = importlib.import_module(f"fnnet.{module}").__all__
    html = (site / "api" / module / "index.html").read_text()
    missing = [n for n in names if f'id="fnnet.{module}.{n}"' not in html]
    assert not missing, f"fnnet.{module}: no reference entry for {missing}"


@needs_docs
def test_docstring_math_is_converted_for_the_renderer(site):
    html = (site / "api" / "activations" / "index.html").read_text()
    assert ":math:" not in html and ":func:" not in html
    assert 'class="arithmatex"' in html


def _hooks():
    spec = importlib.util.spec_from_file_location("fnnet_mkdocs_hooks", ROOT / "tools" / "mkdocs_hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("src_uri, up", [("index.md", ""), ("reference/graph.md", "../")])
def test_source_links_become_api_links_and_a_missing_target_warns(caplog, src_uri, up):
    hooks = _hooks()
    page = types.SimpleNamespace(file=types.SimpleNamespace(src_uri=src_uri))
    md = f"[graph]({up}../fnnet/graph.py), [t]({up}../tests/test_graph.py), [x]({up}../fnnet/nothing_here.py)"
    with caplog.at_level(logging.WARNING):
        out = hooks.on_page_markdown(md, page, None, None)
    assert f"[graph]({up}api/graph.md)" in out  # the module's reference page, from the page's own directory
    assert ", t, " in out  # a file with no page: its text
    assert "nothing_here.py" in caplog.text  # a broken link: a warning, which --strict makes fatal


def test_rst_roles_become_markdown():
    spec = importlib.util.find_spec("griffe")
    if spec is None:
        pytest.skip("needs the docs extra (griffe)")
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from griffe_rst_roles import convert
    finally:
        sys.path.remove(str(ROOT / "tools"))
    assert convert(r"see :func:`fnnet.mlp` and :math:`\sigma(x)`") == r"see `fnnet.mlp` and $\sigma(x)$"
