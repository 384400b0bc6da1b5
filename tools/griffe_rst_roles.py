"""A griffe extension for the API reference (``make docs``).

* fnnet's docstrings use the reStructuredText roles ``:math:`...``` and ``:func:`...``` (and
  ``:class:``, ``:meth:``, ``:mod:``, ``:attr:``, ``:data:``), which Markdown does not know. They become
  ``$...$`` (rendered by pymdownx.arithmatex and MathJax) and code spans, so the docstrings stay readable
  in the source, in ``help()`` and in the site.
* A primitive's public function is made at import time (``relu = elementwise(...).fn``): to static
  analysis it is an attribute without a docstring. Its docstring and signature are read from the
  imported function.
"""
from __future__ import annotations

import importlib
import inspect
import re
import textwrap
from typing import Any

from griffe import Attribute, Docstring, Extension, Object

MATH = re.compile(r":math:`([^`]+)`")
ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`~?([^`]+)`")
# a reStructuredText literal block: a paragraph ending in "::" followed by an indented block
LITERAL = re.compile(r"::\n\n((?:[ \t]+.*\n|\n)+)")


def convert(text: str) -> str:
    text = MATH.sub(lambda m: f"${m.group(1).strip()}$", text)
    text = ROLE.sub(lambda m: f"`{m.group(1)}`", text)
    return LITERAL.sub(lambda m: ":\n\n```text\n" + textwrap.dedent(m.group(1)).strip("\n") + "\n```\n\n", text)


def _runtime_function(attr: Attribute):
    if not attr.path.startswith("fnnet."):
        return None
    try:
        value = getattr(importlib.import_module(attr.parent.path), attr.name)
    except Exception:  # noqa: BLE001  not importable here: leave the attribute as it is
        return None
    return value if inspect.isfunction(value) and value.__doc__ else None


class RstRoles(Extension):
    def on_attribute_instance(self, *, attr: Attribute, **kwargs: Any) -> None:
        if attr.docstring is not None:
            return
        fn = _runtime_function(attr)
        if fn is None:
            return
        try:
            signature = f"{attr.name}{inspect.signature(fn)}"
        except (TypeError, ValueError):
            signature = attr.name
        text = f"```python\n{signature}\n```\n\n{inspect.cleandoc(fn.__doc__)}"
        attr.docstring = Docstring(text, parent=attr)
        attr.labels.discard("module-attribute")
        attr.labels.add("function")

    def on_object(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
