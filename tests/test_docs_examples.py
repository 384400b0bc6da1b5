"""Every ```python block of README.md and docs/ runs as printed, on its own.

Each block runs in a fresh namespace (nothing it uses may come from an earlier block), in one worker
process shared by all blocks so that JAX is imported once; the worker puts JAX's float64 switch back
after each block. A block that sets ``XLA_FLAGS`` (it must do so before JAX starts) gets a process of
its own. A block that is deliberately not runnable is fenced as ```text (or another language).
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
TIMEOUT = 300

WORKER = r'''
import contextlib, io, json, sys, traceback
import jax
for line in sys.stdin:
    code = json.loads(line)
    x64 = jax.config.jax_enable_x64
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            exec(compile(code, "<block>", "exec"), {"__name__": "__main__"})
        result = {"ok": True, "out": out.getvalue()}
    except BaseException:
        result = {"ok": False, "out": out.getvalue() + traceback.format_exc()}
    finally:
        jax.config.update("jax_enable_x64", x64)
    print(json.dumps(result), flush=True)
'''


def blocks(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line number, code) of each ```python block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in FENCE.finditer(text)]


#: Blocks known not to run yet, by (file, ordinal of the block in the file, from 1), with the reason.
#: strict: once such a block runs, the test fails until its entry here is removed.
KNOWN_BROKEN: dict = {}


def _all_blocks():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for path in files:
        rel = path.relative_to(ROOT).as_posix()
        for k, (line, code) in enumerate(blocks(path), 1):
            reason = KNOWN_BROKEN.get((rel, k))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(code, id=f"{rel}:{line}", marks=marks)


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # A block runs with the XLA flags of a plain process: none of the suite's (a forced device count
    # would change what `jax.devices()` shows), except the choice of XLA:CPU emitter that `make test`
    # makes for compile time (same arithmetic; docs/design.md, "test suite").
    keep = [f for f in env.pop("XLA_FLAGS", "").split() if f.startswith("--xla_cpu_use_fusion_emitters")]
    if keep:
        env["XLA_FLAGS"] = " ".join(keep)
    return env


class _Worker:
    def __init__(self, cwd):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            cwd=cwd, env=_env(),
        )

    def run(self, code: str) -> dict:
        self.proc.stdin.write(json.dumps(code) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the docs worker died")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _isolated(code: str) -> bool:
    return "XLA_FLAGS" in code  # must be set before JAX starts: a process of its own


@pytest.fixture(scope="module")
def worker(tmp_path_factory):
    w = _Worker(tmp_path_factory.mktemp("docs"))  # blocks that write files write them there
    yield w
    w.close()


@pytest.fixture(scope="module")
def isolated(tmp_path_factory):
    """The blocks that need a process of their own, all started at once: they run while the worker
    runs the others."""
    cwd = tmp_path_factory.mktemp("isolated")
    procs = {
        p.values[0]: subprocess.Popen([sys.executable, "-c", p.values[0]], cwd=cwd, env=_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for p in _all_blocks() if _isolated(p.values[0])
    }
    yield procs
    for proc in procs.values():
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("code", list(_all_blocks()))
def test_block_runs_as_printed(code, isolated, worker):
    if _isolated(code):
        out, _ = isolated[code].communicate(timeout=TIMEOUT)
        result = {"ok": isolated[code].returncode == 0, "out": out}
    else:
        result = worker.run(code)
    assert result["ok"], f"block failed:\n{code}\n--- output ---\n{result['out']}"


def test_the_extractor_finds_blocks_and_a_broken_block_fails(worker, tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n```python\nx = 1\n```\n```text\nnot python\n```\n```python\nprint(y)\n```\n")
    found = blocks(md)
    assert [line for line, _ in found] == [2, 8]
    assert worker.run(found[0][1])["ok"]
    failed = worker.run(found[1][1])  # y comes from nowhere: a fresh namespace per block
    assert not failed["ok"] and "NameError" in failed["out"]
