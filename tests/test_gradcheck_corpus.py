"""gradcheck on a corpus of custom rules modelled on public code (tests/gradcheck_corpus.py).

Each case is checked correct and with each of its bugs, in float32 and float64, over several input
draws. A correct rule must pass (no false alarm); a buggy one must fail (no miss) and the report must
name the entry the bug is in and say NaN where a value is NaN. The quick test runs one draw of each
case in float32; the whole grid is marked slow (``pytest -m slow tests/test_gradcheck_corpus.py``).

``python tests/test_gradcheck_corpus.py`` runs the grid and prints the table of docs/reference/gradcheck.md,
with jax.test_util.check_grads side by side. ``python tests/test_gradcheck_corpus.py --first-call``
times the first call of each tool on each float32 case in fresh processes (interleaved, medians);
with ``--eager`` fnnet also runs its opt-in jit-vs-eager check.
``python tests/test_gradcheck_corpus.py --many-draws`` checks the correct rules at new draws (3-12 in
float32, 3-22 in float64) and counts false alarms.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gradcheck_corpus import CASES  # noqa: E402

from fnnet.check import gradcheck  # noqa: E402

DRAWS = 3


def run_case(case, bug, dtype, draw):
    f = case.make(bug)
    args = case.draw(dtype, np.random.default_rng(draw))
    return gradcheck(f, *args, **case.options)


def verify(case, bug, dtype, report):
    """Assert the verdict and what the report names."""
    text = str(report)
    if bug is None:
        assert report.passed, f"false alarm on correct {case.name} ({dtype}):\n{text}"
        if case.finding and dtype == "float64" and "order" not in case.options:
            assert case.finding in text, f"{case.name}: the report should name the reference's {case.finding}:\n{text}"
        return
    assert not report.passed, f"missed bug {bug} in {case.name} ({dtype}):\n{text}"
    where = case.bugs[bug]
    named = [e.where for e in report.worst_entries]
    assert any(w.startswith(where) for w in named), f"{case.name}/{bug}: expected {where} in {named}:\n{text}"
    assert report.summary.startswith("gradcheck FAILED") and "\n" not in report.summary
    rules = [e.rule for e in report.worst_entries if e.rule is not None]
    if any(np.isnan(r) for r in rules):
        assert "rule is NaN" in text and "NaN" in report.summary


QUICK = ["sqrt_ratio", "safe_norm", "log_semiring_sum", "clip_gradient", "complex_exp_z", "sinc_jnp"]


@pytest.mark.parametrize("name", QUICK)
def test_corpus_quick(name):
    """One draw in float32 of cases that exercise each part of the verdict: a domain edge (one-sided
    differences), a kink with a NaN reference, -inf inputs (outputs that do not move), a rule that is
    not a derivative (reference_vjp), complex inputs, and a cancelling rule (sinc_jnp's bug)."""
    case = next(c for c in CASES if c.name == name)
    for bug in [None, *list(case.bugs)[:1]]:
        verify(case, bug, "float32", run_case(case, bug, "float32", 0))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_corpus_grid(case, dtype):
    if dtype not in case.dtypes:
        pytest.skip(f"{case.name} is a {'/'.join(case.dtypes)} case")
    for bug in [None, *case.bugs]:
        f = case.make(bug)  # one f per variant: later draws reuse its compiled programs
        for draw in range(DRAWS):
            report = gradcheck(f, *case.draw(dtype, np.random.default_rng(draw)), **case.options)
            verify(case, bug, dtype, report)


def check_grads_problem(case, f, args):
    """f and args as a check_grads user passes them: check_grads has no argnums and differentiates
    every argument, so the arguments gradcheck holds fixed (outside ``argnums``, or integer) are closed
    over. Returns ``(g, dargs)``; for a case with every argument floating and differentiated, ``(f, args)``."""
    import jax
    import jax.numpy as jnp

    argnums = case.options.get("argnums")
    argnums = range(len(args)) if argnums is None else (argnums,) if isinstance(argnums, int) else argnums
    diff = [i for i in argnums
            if all(jnp.issubdtype(jnp.result_type(leaf), jnp.inexact) for leaf in jax.tree_util.tree_leaves(args[i]))]
    if diff == list(range(len(args))):
        return f, tuple(args)

    def g(*dargs):
        full = list(args)
        for i, a in zip(diff, dargs):
            full[i] = a
        return f(*full)

    return g, tuple(args[i] for i in diff)


def _check_grads_verdict(case, f, args):
    """jax.test_util.check_grads (order 1, reverse mode) as users run it: True = pass."""
    import jax
    from jax.test_util import check_grads

    if "reference_vjp" in case.options:
        return None  # not a derivative: check_grads cannot express the check
    order = case.options.get("order", 1)
    f, args = check_grads_problem(case, f, args)
    try:
        check_grads(f, args, order=order, modes=["rev"])
        return True
    except (AssertionError, FloatingPointError, TypeError, ValueError):
        return False
    except jax.errors.JAXTypeError:  # pragma: no cover
        return False


def main():  # pragma: no cover - prints the docs table
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    rows = []
    totals = {"fnnet": [0, 0, 0, 0], "check_grads": [0, 0, 0, 0]}  # false alarms, correct runs, misses, bug runs
    times = {"fnnet": [], "check_grads": []}
    for case in CASES:
        for dtype in case.dtypes:
            for bug in [None, *case.bugs]:
                f = case.make(bug)
                ours, theirs, named, nan_named = [], [], [], []
                for draw in range(DRAWS):
                    args = case.draw(dtype, np.random.default_rng(draw))
                    t = time.perf_counter()
                    r = gradcheck(f, *args, **case.options)
                    times["fnnet"].append(time.perf_counter() - t)
                    ours.append(r.passed)
                    if bug is not None:
                        named.append(any(e.where.startswith(case.bugs[bug]) for e in r.worst_entries))
                    g = case.make(bug)  # a fresh f: check_grads' own first call
                    t = time.perf_counter()
                    theirs.append(_check_grads_verdict(case, g, args))
                    times["check_grads"].append(time.perf_counter() - t)
                correct = bug is None
                for who, verdicts in (("fnnet", ours), ("check_grads", theirs)):
                    vs = [v for v in verdicts if v is not None]
                    if correct:
                        totals[who][0] += sum(not v for v in vs)
                        totals[who][1] += len(vs)
                    else:
                        totals[who][2] += sum(v for v in vs)
                        totals[who][3] += len(vs)
                bad = (lambda vs: sum(not v for v in vs)) if correct else (lambda vs: sum(bool(v) for v in vs))
                cg = [v for v in theirs if v is not None]
                rows.append(f"| {case.name} | {bug or 'correct'} | {dtype} | "
                            f"{bad(ours)}/{len(ours)} | {'' if correct else f'{sum(named)}/{len(named)}'} | "
                            f"{f'{bad(cg)}/{len(cg)}' if cg else 'n/a'} |")
    print("| case | variant | dtype | fnnet wrong verdicts | fnnet names the entry | check_grads wrong verdicts |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for who, (fa, nc, miss, nb) in totals.items():
        print(f"{who}: false alarms {fa}/{nc}, misses {miss}/{nb}, median time per call "
              f"{np.median(times[who]):.3f} s (first calls included)")


FIRST_CALL = """
import sys, time
sys.path.insert(0, {tests!r})
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
jax.config.update("jax_numpy_dtype_promotion", "strict")
from gradcheck_corpus import CASES
from test_gradcheck_corpus import check_grads_problem
case = next(c for c in CASES if c.name == {name!r})
f = case.make(None)
args = case.draw("float32", np.random.default_rng(0))
g, dargs = check_grads_problem(case, f, args)
jnp.zeros(1).block_until_ready()  # JAX's backend start is not counted
# Both tools are imported before the clock starts, as a test module imports them at collection
# (importing fnnet takes ~0.13 s here, once per process; jax.test_util ~1 ms, jax being loaded).
from fnnet.check import gradcheck
from jax.test_util import check_grads
t = time.perf_counter()
if {tool!r} == "fnnet":
    ok = gradcheck(f, *args, **case.options, eager={eager!r}).passed
else:
    try:
        check_grads(g, dargs, order=case.options.get("order", 1), modes=["rev"])
        ok = True
    except AssertionError:
        ok = False
print(ok, time.perf_counter() - t)
"""


def first_call(repeats: int = 3, eager: bool = False):  # pragma: no cover - timing
    import os
    import subprocess

    tests = str(Path(__file__).parent)
    names = [c.name for c in CASES if "reference_vjp" not in c.options]
    times = {(n, t): [] for n in names for t in ("fnnet", "check_grads")}
    for _ in range(repeats):
        for name in names:
            for tool in ("fnnet", "check_grads"):  # interleaved: both see the same load
                code = FIRST_CALL.format(tests=tests, name=name, tool=tool, eager=eager)
                out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                times[(name, tool)].append(float(out.stdout.split()[-1]))
    print(f"first call{' (fnnet with eager=True)' if eager else ''}, float32, fresh processes, medians of {repeats}; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    print("| case | fnnet s | check_grads s | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for name in names:
        a, b = np.median(times[(name, "fnnet")]), np.median(times[(name, "check_grads")])
        ratios.append(a / b)
        print(f"| {name} | {a:.2f} | {b:.2f} | {a / b:.2f} |")
    print(f"median ratio {np.median(ratios):.2f}")


def many_draws():  # pragma: no cover - long
    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_dtype_promotion", "strict")
    for dtype, stop in (("float32", 13), ("float64", 23)):
        alarms = checks = 0
        for case in CASES:
            if dtype not in case.dtypes:
                continue
            f = case.make(None)
            for draw in range(3, stop):
                report = gradcheck(f, *case.draw(dtype, np.random.default_rng(draw)), **case.options)
                checks += 1
                if not report.passed:
                    alarms += 1
                    print("false alarm:", case.name, dtype, draw, report.summary, flush=True)
        print(f"{dtype}: false alarms {alarms}/{checks} (correct rules, draws 3..{stop - 1})", flush=True)


if __name__ == "__main__":  # pragma: no cover
    if "--first-call" in sys.argv:
        first_call(eager="--eager" in sys.argv)
    elif "--many-draws" in sys.argv:
        many_draws()
    else:
        main()
