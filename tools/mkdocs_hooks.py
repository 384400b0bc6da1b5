"""mkdocs hooks for ``make docs``.

The pages link to source files (``[graph.py](../fnnet/graph.py)``), which is right when the Markdown is
read in the repository, and points nowhere in the built site. Here each such link becomes a link to
the module's API page where there is one, and plain text otherwise; a link to a path that does not
exist in the repository is reported as a warning, which ``--strict`` turns into a failed build. The
derivation table of docs/reference/primitives.md is generated from the registry here.
"""
from __future__ import annotations

import logging
import pathlib
import posixpath
import re

log = logging.getLogger("mkdocs.hooks.fnnet")
ROOT = pathlib.Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page, config, files) -> str:
    markdown = _derivations(markdown)
    page_dir = posixpath.dirname(page.file.src_uri)  # relative to docs/
    depth = len([p for p in page_dir.split("/") if p])

    def replace(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        repo_path = posixpath.normpath(posixpath.join("docs", page_dir, target))
        if repo_path.startswith("docs/"):
            return m.group(0)  # inside the site: mkdocs checks it
        if not (ROOT / repo_path).exists():
            log.warning("%s links to %s, which is not in the repository", page.file.src_uri, repo_path)
            return m.group(0)
        api = _api_page(repo_path)
        if api is not None:
            return f"[{text}]({'../' * depth}{api})"
        return text

    return LINK.sub(replace, markdown)


def _api_page(repo_path: str) -> str | None:
    """``fnnet/graph.py`` -> ``api/graph.md``, ``fnnet/check/`` -> ``api/check.md``, if that page exists."""
    parts = repo_path.rstrip("/").split("/")
    if parts[0] != "fnnet" or len(parts) < 2:
        return None
    name = parts[1].removesuffix(".py")
    page = f"api/{name}.md"
    return page if (ROOT / "docs" / page).exists() else None


def _derivations(markdown: str) -> str:
    """The registry's derivation table between docs/reference/primitives.md's markers (generated, never committed)."""
    from experiments import derivations_table

    if derivations_table.BEGIN not in markdown:
        return markdown
    return derivations_table.rewrite(markdown)
