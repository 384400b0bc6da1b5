"""Every ```python block of README.md and docs/ runs as printed, on its own; and every benchmark or
experiment command printed in their other fenced blocks or as inline code parses as printed (its
options reach the command's parser, which stops it: nothing is run).

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


# ---------------------------------------------------------------------------------------------
# Every benchmark and experiment command printed in a fenced block parses as printed
# ---------------------------------------------------------------------------------------------

ANY_FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.S | re.M)
COMMAND = re.compile(r"^(\$ )?([A-Z_]+=\S+ )*\S*python3? (-m (benchmarks|experiments\.\w+)|experiments/\w+\.py)\b")


def commands(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line number, command) of each ``python -m benchmarks ...``, ``python -m experiments.X ...`` or
    ``python experiments/X.py ...`` line in a non-Python fenced block (backslash continuations
    joined; a listing that only mentions a command in a comment is not one)."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in ANY_FENCE.finditer(text):
        if m.group(1).strip() == "python":
            continue
        first = text.count("\n", 0, m.start(2)) + 1
        lines = m.group(2).split("\n")
        k = 0
        while k < len(lines):
            line, start = lines[k], k
            while line.rstrip().endswith("\\") and k + 1 < len(lines):
                k += 1
                line = line.rstrip()[:-1].rstrip() + " " + lines[k].strip()
            if COMMAND.match(line.strip()):
                out.append((first + start, line.strip()))
            k += 1
    return out


INLINE = re.compile(r"`([^`]+)`")
PLACEHOLDER = re.compile(r"^(\[.*\]|[A-Z]+|\.\.\.|.*\.[A-Z]+)$")  # NAME, W, [NAME], ..., experiments.NAME


def inline_commands(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line number, command) of each inline code span outside the fenced blocks that is a whole
    command by :data:`COMMAND` (a span may wrap lines) and holds no placeholder (``NAME``, ``W``,
    ``[--quick]``, ``...``)."""
    import shlex

    text = path.read_text(encoding="utf-8")
    text = ANY_FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)  # keep the line numbers
    out = []
    for m in INLINE.finditer(text):
        cmd = " ".join(m.group(1).split())
        if COMMAND.match(cmd) and not any(PLACEHOLDER.match(w) for w in shlex.split(cmd)):
            out.append((text.count("\n", 0, m.start()) + 1, cmd))
    return out


def _all_commands():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        rel = path.relative_to(ROOT).as_posix()
        for line, cmd in commands(path) + inline_commands(path):
            yield pytest.param(cmd, id=f"{rel}:{line}")


class _Parsed(Exception):
    """Raised in place of running a command once its options have parsed."""


@pytest.mark.parametrize("cmd", list(_all_commands()))
def test_printed_command_parses(cmd, monkeypatch):
    """Each command as printed reaches its argument parser and every option in it parses (nothing is
    run: the parser's result stops the command). A renamed or removed option fails here."""
    import argparse
    import importlib
    import inspect
    import shlex

    words = [w for w in shlex.split(cmd, comments=True) if w != "$"]
    if ">" in words:
        words = words[:words.index(">")]  # the output redirected: not an argument
    while "=" in words[0] and not words[0].startswith("-"):
        words.pop(0)  # VAR=value
    assert words[0].endswith(("python", "python3")), cmd
    if words[1] == "-m":
        module, args = words[2], words[3:]
    else:
        module, args = words[1].removesuffix(".py").replace("/", "."), words[2:]
    target = module  # the module whose parser reads the options
    if module == "benchmarks":
        from benchmarks import BENCHMARKS

        named = bool(args) and not args[0].startswith("-")
        assert not named or args[0] in BENCHMARKS, cmd
        target = BENCHMARKS[args[0]][0] if named else "benchmarks.suite"
    if "argparse" not in inspect.getsource(importlib.import_module(target)):
        # no options to check (a table printer; the report takes one file, made by an earlier run)
        assert callable(importlib.import_module(target).main), cmd
        return
    parsed = []

    def parse_then_stop(self, args=None, namespace=None):
        parsed.append(ArgumentParser_parse_args(self, args, namespace))
        raise _Parsed

    ArgumentParser_parse_args = argparse.ArgumentParser.parse_args
    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    monkeypatch.setattr(sys, "argv", [module, *args])
    main = importlib.import_module(module).main
    with pytest.raises(_Parsed):
        main(args) if inspect.signature(main).parameters else main()
    assert parsed, cmd


def test_the_command_extractor_joins_continuations_and_skips_listings(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("```\npython -m benchmarks dropin \\\n    --ops relu   # a comment\n"
                  "make bench   # python -m benchmarks\nbenchmarks/   python -m benchmarks NAME\n```\n"
                  "```python\nimport os  # python -m benchmarks in Python is not a command\n```\n"
                  "```\nJAX_PLATFORMS=cpu .venv/bin/python experiments/gradcheck_steps.py --quick\n```\n")
    assert commands(md) == [(2, "python -m benchmarks dropin --ops relu   # a comment"),
                            (11, "JAX_PLATFORMS=cpu .venv/bin/python experiments/gradcheck_steps.py --quick")]


def test_inline_commands_are_whole_commands_without_placeholders(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("Run `python -m benchmarks dropin\n--runs 3` or `python -m experiments.NAME`, not\n"
                  "`python -m benchmarks dropin --width W`; `fnnet.softmax` is no command.\n"
                  "```\n`python -m benchmarks inside a fence`\n```\nLast: `python -m benchmarks`.\n")
    assert inline_commands(md) == [(1, "python -m benchmarks dropin --runs 3"), (7, "python -m benchmarks")]
