"""Timing shared by every benchmark: competitors measured side by side in one process.

The competitors are compiled and warmed first, then timed in rounds, each round running every
competitor once, in an order that rotates from round to round (so none always runs first after the
others warmed the caches); a ratio is the median over rounds of the ratio within a round, which
cancels slow drifts of a shared machine.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import jax


@contextlib.contextmanager
def no_persistent_cache():
    """Compile for real inside: a persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``, which the
    test suite sets) would turn a compile-time measurement into a disk read."""
    with contextlib.ExitStack() as restore:
        restore.callback(jax.config.update, "jax_enable_compilation_cache", jax.config.jax_enable_compilation_cache)
        jax.config.update("jax_enable_compilation_cache", False)
        yield


def interleaved(
    fns: dict[str, Callable[[], Any]], rounds: int, min_seconds: float = 0.02,
    progress: Callable[[str], Any] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each thunk, one list entry per round, rounds interleaved.

    Each thunk is called once to warm up, then timed ``inner`` times per round, ``inner`` chosen so that
    the slowest competitor takes about ``min_seconds`` per round (every call blocks until its result is
    ready: no overlap between calls). The order of the competitors rotates from round to round.
    """
    names = list(fns)
    warm = {}
    for n in names:
        jax.block_until_ready(fns[n]())
        t = time.perf_counter()
        jax.block_until_ready(fns[n]())
        warm[n] = time.perf_counter() - t
    inner = max(1, int(math.ceil(min_seconds / max(max(warm.values()), 1e-6))))
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        if progress is not None:
            progress(f"round {r + 1}/{rounds}")
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            f = fns[n]
            t = time.perf_counter()
            for _ in range(inner):
                jax.block_until_ready(f())
            times[n].append((time.perf_counter() - t) / inner)
    return times


def without_options(argv: list[str], names: tuple[str, ...]) -> list[str]:
    """argv without the options ``names`` and their values (``--opt v`` and ``--opt=v``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in names:
            skip = True
        elif not any(a.startswith(n + "=") for n in names):
            out.append(a)
    return out


def fresh_runs(benchmark: str, argv: list[str], runs: int) -> tuple[list[dict], list[dict], int]:
    """``python -m benchmarks <benchmark> <argv>`` (its ``--runs`` and ``--json`` dropped) in ``runs``
    fresh processes, one after the other, each writing its JSON: ``(each run's "results", each
    run's "meta", 0)``, then the heading of the medians' table printed; or the runs so far and the
    exit status of the first run that fails. The processes import the fnnet and the benchmarks
    this one imported. One process's ratios move from process to process by a few per cent (where
    its buffers land); the median of several is what a target is read on."""
    import fnnet

    child_argv = without_options(argv, ("--runs", "--json"))
    root = pathlib.Path(__file__).resolve().parents[1]
    fnnet_root = str(pathlib.Path(fnnet.__file__).resolve().parents[1])
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (fnnet_root, str(root), os.environ.get("PYTHONPATH")) if p)}
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            print(f"\n## Run {i + 1} of {runs}\n", flush=True)
            path = pathlib.Path(tmp) / f"run{i}.json"
            proc = subprocess.run([sys.executable, "-m", "benchmarks", benchmark, *child_argv, "--json", str(path)],
                                  cwd=root, env=env)
            if proc.returncode != 0:
                print(f"run {i + 1} failed with exit status {proc.returncode}", flush=True)
                return [d["results"] for d in out], [d["meta"] for d in out], proc.returncode
            out.append(json.loads(path.read_text()))
    print(f"\n## All {runs} runs\n", flush=True)
    return [d["results"] for d in out], [d["meta"] for d in out], 0


def median_cell(m: dict) -> str:
    """A ratio's median over several runs with their range: ``"1.02 (0.98–1.09)"``."""
    rs = m["ratios_of_runs"]
    return f"{m['ratio']:.2f} ({min(rs):.2f}–{max(rs):.2f})"


def paired_ratio(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of ``time[a] / time[b]`` within the round."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def median(ts: list[float]) -> float:
    return statistics.median(ts)


class Progress:
    """What the benchmark is doing now, on one line of a terminal's stderr, redrawn in place and
    erased by the next printed row. Silent when stderr is not a terminal (logs get the rows alone)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.section = ""
        self.start = time.perf_counter()

    def __call__(self, msg: str) -> None:
        if msg.startswith("round "):
            msg = f"{self.section}, {msg}"
        else:
            self.section = msg
        if self.live:
            line = f"  … {msg} ({time.perf_counter() - self.start:.0f} s)"
            self.stream.write("\r" + line[:110].ljust(110))
            self.stream.flush()

    def clear(self) -> None:
        if self.live:
            self.stream.write("\r" + " " * 110 + "\r")
            self.stream.flush()

    def out(self, line: str) -> None:
        """print() for the rows: the progress line first erased."""
        self.clear()
        print(line, flush=True)
